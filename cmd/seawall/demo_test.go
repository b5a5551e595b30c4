package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/seawall/seawall/internal/testbrowser"
)

// Acceptance 4 of the operator-experience issue: `seawall demo`, one
// command, shows every phase's state in the admin API's event log within
// two minutes (here with 5 s phases: the default 15 s makes 90 s), the
// dashboard shows them (a screenshot is saved), and Ctrl-C leaves no
// process and no file behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo through its phases (about 40 s): the full run runs it")
	}
	bin := buildSeawall(t)
	listen, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "demo", "-phase", "5s", "-listen", listen, "-admin", admin)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var outMu sync.Mutex
	var out strings.Builder
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outMu.Lock()
			out.WriteString(sc.Text() + "\n")
			outMu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	var link, dir string
	for deadline := time.After(30 * time.Second); link == "" || dir == ""; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the demo ended before it started:\n%s", out.String())
			}
			if m := regexp.MustCompile(`(http://\S+/login\?once=\S+).*the token is in (\S+)/admin-token`).FindStringSubmatch(l); m != nil {
				link, dir = m[1], m[2]
			}
		case <-deadline:
			t.Fatal("the demo printed no login link within 30 s")
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the demo's directory %s: %v", dir, err)
	}

	// The dashboard, logged in by the one-time link.
	b := testbrowser.Start(t, admin)
	if err := b.Do(10*time.Second, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(10*time.Second, `document.querySelectorAll('#ups tbody tr').length === 1`); err != nil {
		t.Fatal(err)
	}

	// Every phase's state in the event log, within two minutes.
	tokenBytes, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	want := []string{"jobs.dead_lettered", "endpoint.isolated", "breaker.opened", "cache.serving_stale", "upstream.paused"}
	seen := map[string]bool{}
	start := time.Now()
	for time.Since(start) < 2*time.Minute && len(seen) < len(want) {
		time.Sleep(time.Second)
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/admin/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var events []struct{ Type string }
		_ = json.NewDecoder(resp.Body).Decode(&events)
		_ = resp.Body.Close()
		for _, e := range events {
			for _, w := range want {
				if e.Type == w && !seen[w] {
					seen[w] = true
					t.Logf("%s after %v", w, time.Since(start).Round(time.Second))
				}
			}
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no %s in the event log within 2 minutes", w)
		}
	}
	// The page shows them: the timeline lists each, and the screenshot is
	// the demo's picture.
	for _, w := range want {
		if err := b.WaitFor(5*time.Second, fmt.Sprintf(`[...document.querySelectorAll('#events li')].some(li => li.dataset.type === %q)`, w)); err != nil {
			t.Errorf("the dashboard's timeline does not show %s: %v", w, err)
		}
	}
	b.Screenshot(t, "demo")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("console errors, exceptions or failed loads: %q", p)
	}

	// The dead letters, replayed from the page, confirmed there, and shown
	// in the timeline.
	if err := b.Click(`button[data-action="select"][data-name="shop"]`); err != nil {
		t.Fatal(err)
	}
	if err := b.Click(`button[data-action="replay"]`); err != nil {
		t.Fatalf("no replay button for the dead letters: %v", err)
	}
	if err := b.Click("#confirm-yes"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(5*time.Second, `[...document.querySelectorAll('#events li')].some(li => li.dataset.type === 'jobs.replayed')`); err != nil {
		t.Errorf("the replay is not in the timeline: %v (notice: %s)", err, b.Text("#notice"))
	}

	// The script runs on to its last phase.
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		outMu.Lock()
		done := strings.Contains(out.String(), ", healthy again: ")
		outMu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
	}

	// Ctrl-C: the process ends, its ports close, its directory is gone.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		for range lines { //nolint:revive // drain until stdout closes
		}
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the demo exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30 s of Ctrl-C")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo left %s behind (%v)", dir, err)
	}
	for _, addr := range []string{listen, admin} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			t.Errorf("%s still accepts connections after the demo stopped", addr)
		}
	}
	outMu.Lock()
	defer outMu.Unlock()
	for _, p := range []string{"healthy", "errors", "brownout", "outage", "squeeze", "healthy again"} {
		if !strings.Contains(out.String(), ", "+p+": ") {
			t.Errorf("the console never named the phase %q:\n%s", p, out.String())
		}
	}
	if !strings.Contains(out.String(), "stopped; removed "+dir) {
		t.Errorf("no closing line naming %s:\n%s", dir, out.String())
	}
}

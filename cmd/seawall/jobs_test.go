package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/testdb"
)

// Acceptance 3, through the real binary and the CLI: jobs that always fail
// end dead after max_attempts; `seawall dead replay` delivers them once the
// upstream works, one by id and the rest with -all. Run on both stores.
func TestDeadReplayThroughTheCLI(t *testing.T) {
	bin := buildSeawall(t)
	t.Run("sqlite", func(t *testing.T) { deadReplay(t, bin, filepath.Join(t.TempDir(), "jobs.db")) })
	t.Run("postgres", func(t *testing.T) { deadReplay(t, bin, testdb.PostgresURL(t)) })
}

func deadReplay(t *testing.T, bin, store string) {
	fake := fakeapi.New(fakeapi.Behavior{Down: true, ErrorStatus: 500})
	up := httptest.NewServer(fake)
	defer up.Close()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seawall.yaml")
	// No admin.token: the CLI finds the one Seawall generated in data_dir.
	doc := fmt.Sprintf(`listen: %s
admin: {listen: %s}
data_dir: `+filepath.Join(dir, "data")+`
log: {level: error}
jobs: {store: "%s", max_attempts: 3, schedule: [20ms]}
upstreams:
  api:
    url: %s
    mode: async
    breaker: {disabled: true}
`, addr, adminAddr, store, up.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	proc := startServe(t, bin, cfg, base)
	defer func() { _ = proc.Process.Signal(syscall.SIGTERM); _ = proc.Wait() }()
	client := &http.Client{Timeout: 5 * time.Second}

	var ids []string
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/orders", strings.NewReader(fmt.Sprintf(`{"order":%d}`, i)))
		req.Header.Set("Authorization", "Bearer app-secret")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		ids = append(ids, resp.Header.Get("Seawall-Job-Id"))
	}
	waitAll := func(state string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			done := 0
			for _, id := range ids {
				if jobState(t, client, base, id) == state {
					done++
				}
			}
			if done == len(ids) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d jobs %s", done, len(ids), state)
			}
		}
	}
	waitAll("dead")
	if n := fake.Count(); n != 3*3 {
		t.Errorf("upstream got %d calls for 3 jobs of 3 attempts", n)
	}

	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "-c", cfg), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := cli("dead", "list")
	if code != 0 || strings.Count(out, " dead ") != 3 || !strings.Contains(out, "upstream answered 500") {
		t.Fatalf("dead list: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli("jobs", "show", ids[0])
	var shown map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown["state"] != "dead" ||
		strings.Contains(out, "app-secret") || !strings.Contains(out, "[redacted]") {
		t.Errorf("jobs show: exit %d\n%s", code, out)
	}
	if code, _, errs := cli("jobs", "retry", "abc"); code != 2 || !strings.Contains(errs, "not a job id") {
		t.Errorf("jobs retry abc: exit %d %s", code, errs)
	}
	if code, _, errs := cli("dead", "replay"); code != 2 || !strings.Contains(errs, "-all") {
		t.Errorf("dead replay without ids or -all: exit %d %s", code, errs)
	}

	fake.Set(fakeapi.Behavior{}) // the upstream works again
	if code, out, errs := cli("dead", "replay", ids[0]); code != 0 || !strings.Contains(out, "replayed 1 of 1") {
		t.Fatalf("dead replay %s: exit %d\n%s%s", ids[0], code, out, errs)
	}
	for deadline := time.Now().Add(30 * time.Second); jobState(t, client, base, ids[0]) != "succeeded"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replayed job did not succeed")
		}
	}
	if code, _, errs := cli("dead", "replay", ids[0]); code != 1 || !strings.Contains(errs, "not dead") {
		t.Errorf("replaying a succeeded job: exit %d %s", code, errs)
	}
	if code, out, errs := cli("dead", "replay", "-all", "-upstream", "api"); code != 0 || !strings.Contains(out, "replayed 2 dead job(s)") {
		t.Fatalf("dead replay -all: exit %d\n%s%s", code, out, errs)
	}
	waitAll("succeeded")
	if n := fake.Count(); n != 3*3+3 {
		t.Errorf("upstream got %d calls, want 9 failed and 3 replayed deliveries", n)
	}
	if code, out, _ := cli("jobs", "list", "-state", "succeeded", "-limit", "2"); code != 0 || !strings.Contains(out, "next page: -after") {
		t.Errorf("jobs list paging: exit %d\n%s", code, out)
	}
	// The admin API wants its token.
	resp, err := client.Get("http://" + adminAddr + "/admin/dead")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin without a token: %d", resp.StatusCode)
	}
	// A wrong token is refused with a message that says what to do.
	if code, _, errs := cli("jobs", "list", "-token", "not-the-admin-token"); code != 1 || !strings.Contains(errs, "refused the token") {
		t.Errorf("jobs list with a wrong token: exit %d %s", code, errs)
	}
}

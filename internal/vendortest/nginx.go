// Package vendortest runs independent implementations of a vendor's
// behaviour for tests: nginx with limit_req as a rate-limited vendor, and
// raw TCP listeners that misbehave on the wire. Seawall's promises about
// third parties are checked against these as well as against its own
// fake, which could be kinder than real vendors.
package vendortest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nginx is a running nginx that serves a small JSON file under
// limit_req: a leaky bucket at Rate without burst, answering 429 past it.
type Nginx struct {
	URL  string
	dir  string
	Rate int

	args []string
	cmd  *exec.Cmd
	out  *os.File
}

// Hit is one request in nginx's own access log.
type Hit struct {
	At     time.Time
	Status int
	// Replica is the caller's X-Replica header ("-" when none): which
	// Seawall sent the call, when a test runs several.
	Replica string
}

// StartNginx starts nginx on a free loopback port, limited to rate
// requests a second without burst, and stops it when the test ends. With
// nginx missing, the test fails under CI=true (CI installs it) and is
// skipped otherwise.
func StartNginx(t testing.TB, rate int) *Nginx {
	t.Helper()
	return startNginx(t, rate, "")
}

// StartNginxRetryAfter is StartNginx whose 429s carry Retry-After: secs,
// as many vendors send it.
func StartNginxRetryAfter(t testing.TB, rate, secs int) *Nginx {
	t.Helper()
	return startNginx(t, rate, fmt.Sprintf("add_header Retry-After %d always;", secs))
}

func startNginx(t testing.TB, rate int, location string) *Nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nginx is needed as an independent rate-limited vendor: apt-get install nginx-light")
		}
		t.Skip("nginx not installed (apt-get install nginx-light); CI runs this test")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "www"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "ok.json"), []byte(`{"ok":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// `return` would run before limit_req (rewrite phase), so the location
	// serves a file; and the zone's key must not be empty, or nothing is
	// limited: $server_port is never empty.
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    log_format vendor '$msec $status $http_x_replica';
    access_log %[1]s/access.log vendor;
    limit_req_zone $server_port zone=vendor:1m rate=%[3]dr/s;
    limit_req_status 429;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%[2]d;
        location / {
            limit_req zone=vendor;
            %[4]s
            root %[1]s/www;
            default_type application/json;
            try_files /ok.json =404;
        }
    }
}
`, dir, port, rate, location)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log")}
	// A real vendor runs on its own machine: its clock is not delayed by
	// the test's own load. nginx stamps a request when its event loop gets
	// to it, so on a shared CPU a descheduled nginx would stamp calls late
	// and refuse the next one as early. Real-time priority keeps nginx
	// from waiting behind the test (where the system allows it).
	if chrt, err := exec.LookPath("chrt"); err == nil && exec.Command(chrt, "-f", "10", "true").Run() == nil { //nolint:gosec // chrt found on PATH, fixed arguments
		args = append([]string{chrt, "-f", "10"}, args...)
	} else {
		t.Logf("nginx runs at normal priority: chrt -f unavailable; its timing may suffer from the test's own load")
	}
	n := &Nginx{URL: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, Rate: rate, args: args}
	n.Start(t)
	t.Cleanup(n.Stop)
	return n
}

// Start runs nginx (again, after Stop) on its port, and waits until it
// listens.
func (n *Nginx) Start(t testing.TB) {
	t.Helper()
	n.cmd = exec.Command(n.args[0], n.args[1:]...) //nolint:gosec // nginx (and chrt) found on PATH, with the test's own files
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	n.out, _ = os.Create(filepath.Join(n.dir, "stdout.log"))
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	addr := strings.TrimPrefix(n.URL, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %s", addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends nginx, as a vendor's host going away: connections to its
// port are refused until Start.
func (n *Nginx) Stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
	_ = n.out.Close()
	n.cmd = nil
}

// Hits reads nginx's access log: every request it received, with its status.
func (n *Nginx) Hits(t testing.TB) []Hit {
	t.Helper()
	f, err := os.Open(filepath.Join(n.dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hits []Hit
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		secs, err1 := strconv.ParseFloat(f[0], 64)
		code, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("access log line %q", sc.Text())
		}
		h := Hit{At: time.UnixMilli(int64(secs*1000 + 0.5)), Status: code, Replica: "-"}
		if len(f) > 2 {
			h.Replica = f[2]
		}
		hits = append(hits, h)
	}
	return hits
}

// Count tells how many hits had each status.
func Count(hits []Hit) map[int]int {
	out := map[int]int{}
	for _, h := range hits {
		out[h.Status]++
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Gaps describes the spacing nginx saw: the smallest gap between two
// accepted requests, and the gap before each refused one, from the last
// accepted (at nginx's millisecond resolution).
func Gaps(hits []Hit) string {
	var last time.Time
	smallest := time.Duration(-1)
	var refused []string
	lastBy := "-"
	for _, h := range hits {
		switch {
		case h.Status == 429 && !last.IsZero():
			refused = append(refused, fmt.Sprintf("%s (replica %s after %s)", h.At.Sub(last), h.Replica, lastBy))
		case h.Status != 429:
			if !last.IsZero() && (smallest < 0 || h.At.Sub(last) < smallest) {
				smallest = h.At.Sub(last)
			}
			last, lastBy = h.At, h.Replica
		}
	}
	return fmt.Sprintf("smallest gap between accepted calls %s; refused after %v", smallest, refused)
}

// TimingEnv enables the tests whose subject is timing against a real
// vendor (exact-rate pacing, the adaptive rate). They must run alone: on
// a loaded machine the vendor's own clock is delayed (the kernel hands it
// packets late, and it counts a call late and refuses the next one as
// early), which measures the machine rather than Seawall. .ci/run runs
// them in a step of their own.
const TimingEnv = "SEAWALL_VENDOR_TIMING"

// Quiet skips t unless TimingEnv is set, saying how to run it.
func Quiet(t testing.TB) {
	t.Helper()
	if os.Getenv(TimingEnv) == "" {
		t.Skipf("timing against real nginx, to be run alone: %s=1 go test -run 'TestNginx' ./internal/proxy (CI runs it so)", TimingEnv)
	}
}

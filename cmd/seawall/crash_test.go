package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testdb"
)

// TestServeCrashSafety runs the real binary: the app's async requests are
// accepted with 202 while the upstream is slow; `seawall serve` is killed
// with SIGKILL three times during delivery and restarted each time. Every
// accepted job must reach the upstream and end succeeded; duplicates must
// carry their original's Idempotency-Key. SEAWALL_CRASH_JOBS sets the count
// (default 600).
func TestServeCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("a crash test (three SIGKILLs of the binary, about 50 s): the full run, go test ./... as CI runs it, runs it")
	}
	n := 600
	if v, err := strconv.Atoi(os.Getenv("SEAWALL_CRASH_JOBS")); err == nil && v > 0 {
		n = v
	}
	bin := buildSeawall(t)
	t.Run("sqlite", func(t *testing.T) { crashServe(t, bin, filepath.Join(t.TempDir(), "jobs.db"), n) })
	t.Run("postgres", func(t *testing.T) { crashServe(t, bin, testdb.PostgresURL(t), n) })
}

// jobVendor is a vendor that notes each delivery: how many times each
// Idempotency-Key came, and the keys each body (one job's own) came with.
type jobVendor struct {
	delay  time.Duration
	mu     sync.Mutex
	seen   map[string]int             // Idempotency-Key -> deliveries
	keysOf map[string]map[string]bool // a job's body -> the keys it was delivered with
}

// newJobVendor answers each delivery after delay: slow, so that kills
// land mid-delivery.
func newJobVendor(delay time.Duration) *jobVendor {
	return &jobVendor{delay: delay, seen: map[string]int{}, keysOf: map[string]map[string]bool{}}
}

func (d *jobVendor) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	time.Sleep(d.delay)
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[key]++
	if d.keysOf[string(body)] == nil {
		d.keysOf[string(body)] = map[string]bool{}
	}
	d.keysOf[string(body)][key] = true
}

// delivered counts the jobs delivered at least once.
func (d *jobVendor) delivered() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keysOf)
}

// tally holds the accepted jobs' bodies against the deliveries: lost
// never came, manyKeys came under more than one key (a vendor would act
// twice), dups are deliveries past each key's first, keys the keys seen.
func (d *jobVendor) tally(t *testing.T, bodies []string) (lost, manyKeys, dups, keys int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, body := range bodies {
		switch k := d.keysOf[body]; {
		case len(k) == 0:
			lost++
		case len(k) > 1:
			manyKeys++
			t.Logf("the job %s was delivered with %d keys: %v", body, len(k), k)
		}
	}
	for _, c := range d.seen {
		dups += c - 1
	}
	return lost, manyKeys, dups, len(d.seen)
}

func crashServe(t *testing.T, bin, store string, n int) {
	vendor := newJobVendor(10 * time.Millisecond)
	up := httptest.NewServer(vendor)
	defer up.Close()
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "seawall.yaml")
	doc := fmt.Sprintf(`listen: %s
admin: {listen: "off"}
log: {level: error}
jobs: {store: "%s", base_delay: 20ms, max_delay: 200ms, max_attempts: 25, visibility_timeout: 3s, concurrency: 8}
upstreams:
  api:
    url: %s
    mode: async
    timeouts: {overall: 2s}
`, addr, store, up.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}

	accepted := map[string]string{} // job id -> its body, which no other job has
	delivered := vendor.delivered
	send := func(i int) {
		body := `{"i":` + strconv.Itoa(i) + `}`
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/events", strings.NewReader(body))
		if i%2 == 0 {
			req.Header.Set("Idempotency-Key", "app-"+strconv.Itoa(i))
		}
		resp, err := client.Do(req)
		if err != nil {
			return // the process was killed mid-request: not accepted
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			accepted[resp.Header.Get("Seawall-Job-Id")] = body
		}
	}

	next := 0
	for kill := 1; kill <= 4; kill++ {
		proc := startServe(t, bin, cfg, base)
		for ; next < n*kill/4; next++ {
			send(next)
		}
		if kill == 4 {
			defer func() { _ = proc.Process.Signal(syscall.SIGKILL); _ = proc.Wait() }()
			break
		}
		// Kill once some of these jobs are delivered and, most likely, others
		// are in flight. Bounded: a fast run may have delivered them all.
		target := min(delivered()+20, len(accepted))
		for deadline := time.Now().Add(10 * time.Second); delivered() < target && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		_ = proc.Process.Signal(syscall.SIGKILL)
		_ = proc.Wait()
		t.Logf("kill %d: SIGKILL with %d accepted, %d delivered", kill, len(accepted), delivered())
	}

	deadline := time.Now().Add(4 * time.Minute)
	for {
		pending := 0
		for id := range accepted {
			if jobState(t, client, base, id) != "succeeded" {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted jobs not succeeded", pending, len(accepted))
		}
		time.Sleep(2 * time.Second)
	}
	lost, manyKeys, dups, keys := vendor.tally(t, slices.Collect(maps.Values(accepted)))
	sequential := 0
	vendor.mu.Lock()
	for key := range vendor.seen {
		if strings.HasPrefix(key, "seawall-job-") {
			sequential++
		}
	}
	vendor.mu.Unlock()
	t.Logf("%d sent, %d accepted (202), 3 SIGKILLs: lost %d, duplicate deliveries %d, jobs with more than one key %d", n, len(accepted), lost, dups, manyKeys)
	if lost > 0 || manyKeys > 0 || sequential > 0 || keys > len(accepted) {
		t.Errorf("lost %d accepted jobs; %d jobs delivered under several keys; %d keys from the store's sequence; %d keys delivered for %d accepted jobs",
			lost, manyKeys, sequential, keys, len(accepted))
	}
}

// buildSeawall builds the binary once for the tests that run it.
func buildSeawall(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "seawall-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "seawall")
		// As the README builds it: static, with the commit from a linker
		// flag, so that every test that runs the binary smoke-tests that build.
		build := exec.Command("go", "build", "-buildvcs=false", "-ldflags", "-X main.commit="+testCommit, "-o", builtBin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building seawall: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// testCommit is the commit the tests' build says it came from.
const testCommit = "0123456789abcdef0123"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func startServe(t *testing.T, bin, cfg, base string, flags ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "-c", cfg}, flags...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/_seawall/jobs/0"); err == nil {
			_ = resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("seawall serve did not start listening")
		}
	}
}

func jobState(t *testing.T, c *http.Client, base, id string) string {
	resp, err := c.Get(base + "/_seawall/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j struct {
		State string `json:"state"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&j)
	return j.State
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// TestSoak runs the real binary under mixed traffic in every mode (sync,
// cached, async, deferred) while the fake upstream goes through cycles of
// health, errors, latency and an outage. Each second it samples Seawall's
// resident memory, goroutines and open file descriptors. It fails if any of
// them keeps growing after warm-up (the last cycle's peak well above the
// first one's after warm-up), if Seawall ever fails to answer, or if any
// accepted job is lost: neither delivered nor dead-lettered.
//
// SEAWALL_SOAK sets the length (default 48s; the documented run is 10m),
// SEAWALL_SOAK_RATE the requests per second (default 200).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak run takes a minute; it runs without -short")
	}
	length := 48 * time.Second
	if v, err := time.ParseDuration(os.Getenv("SEAWALL_SOAK")); err == nil && v > 0 {
		length = v
	}
	rate := 200
	if v, err := strconv.Atoi(os.Getenv("SEAWALL_SOAK_RATE")); err == nil && v > 0 {
		rate = v
	}
	cycles := max(4, int(length/time.Minute))
	phase := length / time.Duration(cycles*len(soakPhases))
	warmup := max(1, cycles/5)

	up := newDeliveryLog(fakeapi.New(soakPhases[0].b))
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	addr, admin := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "seawall.yaml")
	doc := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: `+testAdminToken+`}
log: {level: error}
cache: {max_bytes: 4MiB}
jobs: {store: %q, base_delay: 50ms, max_delay: 1s, max_attempts: 200, concurrency: 8}
upstreams:
  api:
    url: %s
    rate_limit: {rate: 1000/s, burst: 100}
    breaker: {min_calls: 20, open_duration: 1s, max_open_duration: 2s}
    retry: {max_attempts: 3, base_delay: 20ms}
    timeouts: {per_try: 1s, overall: 4s}
    cache: {ttl: 2s, stale_if_error: 1m}
    routes:
      - {name: catalog, match: "GET /v1/catalog/{id}", mode: cached}
      - {name: events, match: "POST /v1/events", mode: async}
      - {name: orders, match: "POST /v1/orders", mode: deferred}
`, addr, admin, filepath.Join(t.TempDir(), "jobs.db"), upSrv.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	proc := startServe(t, buildSeawall(t), cfg, base)
	defer func() { _ = proc.Process.Signal(syscall.SIGKILL); _ = proc.Wait() }()
	pid := proc.Process.Pid

	load := newSoakLoad(base)
	var samples []soakSample
	start := time.Now()
	end := start.Add(length)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load.run(rate, end, stop) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	current := -1
	for now := time.Now(); now.Before(end); now = <-tick.C {
		i := int(now.Sub(start)/phase) % len(soakPhases)
		if i != current {
			current = i
			up.fake.Set(soakPhases[i].b)
		}
		s, err := sample(pid, "http://"+admin)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("sampling Seawall: %v", err)
		}
		s.at, s.cycle = now.Sub(start), int(now.Sub(start)/(phase*time.Duration(len(soakPhases))))
		samples = append(samples, s)
	}
	close(stop)
	wg.Wait()
	up.fake.Set(soakPhases[0].b)

	// Every cycle's peaks, then the growth check on those after warm-up.
	peaks := make([]soakSample, cycles)
	for _, s := range samples {
		if s.cycle < cycles {
			p := &peaks[s.cycle]
			p.rss, p.goroutines, p.fds = max(p.rss, s.rss), max(p.goroutines, s.goroutines), max(p.fds, s.fds)
		}
	}
	for i, p := range peaks {
		t.Logf("cycle %d/%d peaks: rss %d KiB, goroutines %d, open fds %d", i+1, cycles, p.rss, p.goroutines, p.fds)
	}
	first, last := peaks[warmup], peaks[cycles-1]
	grew := func(what string, a, b, slack int64) {
		if b > a+a/4+slack {
			t.Errorf("%s kept growing after warm-up: peak %d in cycle %d, %d in cycle %d", what, a, warmup+1, b, cycles)
		}
	}
	grew("resident memory (KiB)", first.rss, last.rss, 8<<10)
	grew("goroutines", first.goroutines, last.goroutines, 64)
	grew("open file descriptors", first.fds, last.fds, 32)

	// Every accepted job must end delivered or dead-lettered.
	client := &http.Client{Timeout: 10 * time.Second}
	accepted := load.acceptedJobs()
	deadline := time.Now().Add(3 * time.Minute)
	lost, dead := 0, 0
	for {
		lost, dead = 0, 0
		for id, key := range accepted {
			if up.delivered(key) {
				continue
			}
			switch jobState(t, client, base, id) {
			case "dead":
				dead++
			default:
				lost++
			}
		}
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	st := load.stats()
	t.Logf("%s at %d/s: %d requests (sync %d, cached %d, async %d, deferred %d); answers: %v; jobs accepted %d, delivered %d, dead %d, lost %d",
		length, rate, st.sent, st.byMode["sync"], st.byMode["cached"], st.byMode["async"], st.byMode["deferred"],
		st.statuses, len(accepted), len(accepted)-lost-dead, dead, lost)
	if lost > 0 {
		t.Errorf("%d of %d accepted jobs were neither delivered nor dead-lettered", lost, len(accepted))
	}
	if st.failed > 0 {
		t.Errorf("Seawall failed to answer %d requests (connection errors or timeouts): %s", st.failed, st.firstErr)
	}
	if len(accepted) == 0 || st.statuses[200] == 0 {
		t.Errorf("the load did not exercise Seawall: %d jobs accepted, answers %v", len(accepted), st.statuses)
	}
}

// soakPhases are what the upstream does in turn in every cycle.
var soakPhases = []struct {
	name string
	b    fakeapi.Behavior
}{
	{"healthy", fakeapi.Behavior{LatencyMin: fakeapi.Duration(time.Millisecond), LatencyMax: fakeapi.Duration(5 * time.Millisecond)}},
	{"errors", fakeapi.Behavior{ErrorRate: 0.3, LatencyMax: fakeapi.Duration(5 * time.Millisecond)}},
	{"slow", fakeapi.Behavior{LatencyMin: fakeapi.Duration(50 * time.Millisecond), LatencyMax: fakeapi.Duration(300 * time.Millisecond)}},
	{"outage", fakeapi.Behavior{Down: true}},
}

// deliveryLog is the fake upstream, noting the Idempotency-Key of every
// job delivery it answered with success.
type deliveryLog struct {
	fake *fakeapi.Server
	mu   sync.Mutex
	keys map[string]bool
}

func newDeliveryLog(f *fakeapi.Server) *deliveryLog {
	return &deliveryLog{fake: f, keys: map[string]bool{}}
}

func (d *deliveryLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	d.fake.ServeHTTP(rec, r)
	if key := r.Header.Get("Idempotency-Key"); key != "" && rec.status/100 == 2 {
		d.mu.Lock()
		d.keys[key] = true
		d.mu.Unlock()
	}
}

func (d *deliveryLog) delivered(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.keys[key]
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// soakLoad sends the mixed traffic at a fixed rate and keeps the count.
type soakLoad struct {
	base   string
	client *http.Client
	seq    atomic.Int64

	mu       sync.Mutex
	accepted map[string]string // job id -> Idempotency-Key of its deliveries
	sent     int
	byMode   map[string]int
	statuses map[int]int
	failed   int
	firstErr string
}

func newSoakLoad(base string) *soakLoad {
	return &soakLoad{
		base:     base,
		client:   &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		accepted: map[string]string{},
		byMode:   map[string]int{},
		statuses: map[int]int{},
	}
}

// run sends rate requests a second until end or stop, from 64 workers at
// most; a request finds no free worker only if Seawall stalls, and is then
// skipped rather than queued without bound.
func (l *soakLoad) run(rate int, end time.Time, stop <-chan struct{}) {
	due := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range due {
				l.one()
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	for time.Now().Before(end) {
		select {
		case <-stop:
			end = time.Now()
		case <-t.C:
			select {
			case due <- struct{}{}:
			default:
			}
		}
	}
	close(due)
	wg.Wait()
	l.client.CloseIdleConnections()
}

// one sends the next request of the mix: of every 10, 4 sync (3 GET, 1
// POST), 3 cached GETs over 20 keys, 2 async and 1 deferred.
func (l *soakLoad) one() {
	n := l.seq.Add(1)
	var req *http.Request
	mode, key := "", ""
	switch n % 10 {
	case 0, 1, 2:
		mode = "sync"
		req, _ = http.NewRequest(http.MethodGet, l.base+"/api/v1/items/"+strconv.FormatInt(n%50, 10), nil)
	case 3:
		mode = "sync"
		req, _ = http.NewRequest(http.MethodPost, l.base+"/api/v1/items", strings.NewReader(`{"name":"soak"}`))
	case 4, 5, 6:
		mode = "cached"
		req, _ = http.NewRequest(http.MethodGet, l.base+"/api/v1/catalog/"+strconv.FormatInt(n%20, 10), nil)
	case 7, 8:
		mode, key = "async", "soak-"+strconv.FormatInt(n, 10)
		req, _ = http.NewRequest(http.MethodPost, l.base+"/api/v1/events", strings.NewReader(`{"n":`+strconv.FormatInt(n, 10)+`}`))
	default:
		mode, key = "deferred", "soak-"+strconv.FormatInt(n, 10)
		req, _ = http.NewRequest(http.MethodPost, l.base+"/api/v1/orders", strings.NewReader(`{"n":`+strconv.FormatInt(n, 10)+`}`))
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := l.client.Do(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	l.byMode[mode]++
	if err != nil {
		l.failed++
		if l.firstErr == "" {
			l.firstErr = err.Error()
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	l.statuses[resp.StatusCode]++
	if key != "" && resp.StatusCode == http.StatusAccepted {
		l.accepted[resp.Header.Get("Seawall-Job-Id")] = key
	}
}

func (l *soakLoad) acceptedJobs() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

type soakStats struct {
	sent, failed int
	byMode       map[string]int
	statuses     map[int]int
	firstErr     string
}

func (l *soakLoad) stats() soakStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return soakStats{sent: l.sent, failed: l.failed, byMode: l.byMode, statuses: l.statuses, firstErr: l.firstErr}
}

// soakSample is one second's reading of the Seawall process.
type soakSample struct {
	at                   time.Duration
	cycle                int
	rss, goroutines, fds int64
}

// sample reads the process's resident set and open descriptors from /proc
// and its goroutines from the go_goroutines metric.
func sample(pid int, admin string) (soakSample, error) {
	var s soakSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.rss, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = int64(len(fds))
	resp, err := (&http.Client{Transport: withToken(http.DefaultTransport)}).Get(admin + "/metrics")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			s.goroutines, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if s.rss == 0 || s.goroutines == 0 {
		return s, fmt.Errorf("no reading (rss %d KiB, goroutines %d)", s.rss, s.goroutines)
	}
	return s, sc.Err()
}

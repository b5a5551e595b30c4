package main

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// keyLog records the Idempotency-Key of every request an upstream got.
type keyLog struct {
	mu   sync.Mutex
	keys map[string]int
	n    atomic.Int64
}

func (k *keyLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.n.Add(1)
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		k.mu.Lock()
		k.keys[key]++
		k.mu.Unlock()
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (k *keyLog) has(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[key] > 0
}

// Config reload, acceptance 2: the app sends 500 requests a second
// through two upstreams (sync and async) for 60 s (SEAWALL_RELOAD_SECONDS)
// while the config is reloaded 20 times, by SIGHUP and by `seawall
// reload`, alternating two valid files that change rates, routes and an
// upstream's URL, and twice with an invalid file. Every request must be
// answered as usual, every accepted job delivered, each new rate in force
// within a second, and each invalid file rejected with its line.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("the reload-under-load run takes a minute; it runs without -short")
	}
	length := 60 * time.Second
	if v, err := time.ParseDuration(os.Getenv("SEAWALL_RELOAD_SECONDS") + "s"); err == nil && v > 0 {
		length = v
	}
	const rate, reloads, invalid = 500, 20, 2
	a := &keyLog{keys: map[string]int{}}
	b1, b2 := fakeapi.New(fakeapi.Behavior{}), fakeapi.New(fakeapi.Behavior{})
	upA, upB1, upB2 := httptest.NewServer(a), httptest.NewServer(b1), httptest.NewServer(b2)
	for _, u := range []*httptest.Server{upA, upB1, upB2} {
		defer u.Close()
	}
	addr, adminAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seawall.yaml")
	head := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: %s}
log: {level: warn}
jobs: {store: %q, base_delay: 20ms, max_delay: 200ms, concurrency: 8}
upstreams:
`, addr, adminAddr, testAdminToken, filepath.Join(dir, "jobs.db"))
	// Two valid files: rates, routes and b's URL differ; both rates are
	// above the offered load, so no request need wait long or be refused.
	files := []struct {
		doc    string
		rateB  float64
		routes int
	}{
		{head + fmt.Sprintf(`  a:
    url: %s
    job_concurrency: 8
    rate_limit: {rate: 2000/s, burst: 200}
    routes:
      - {name: events, match: "POST /v1/events", mode: async}
  b:
    url: %s
    rate_limit: {rate: 1000/s, burst: 100}
`, upA.URL, upB1.URL), 1000, 1},
		{head + fmt.Sprintf(`  a:
    url: %s
    job_concurrency: 8
    rate_limit: {rate: 1500/s, burst: 150}
    routes:
      - {name: events, match: "POST /v1/events", mode: async}
      - {name: items, match: "GET /v1/items/{id}", retry: {max_attempts: 2}}
  b:
    url: %s
    rate_limit: {rate: 800/s, burst: 80}
`, upA.URL, upB2.URL), 800, 2},
	}
	const badLine = 9 // of the invalid file: a misspelt key
	bad := head + fmt.Sprintf("  a:\n    url: %s\n    rate_limit: {rate: 100/s}\n    retyr: {}\n  b: {url: %s}\n", upA.URL, upB1.URL)
	write := func(doc string) {
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(files[0].doc)
	base := "http://" + addr
	proc := startServe(t, buildSeawall(t), cfg, base)
	defer func() { _ = proc.Process.Signal(syscall.SIGTERM); _ = proc.Wait() }()
	ops := &http.Client{Transport: withToken(http.DefaultTransport), Timeout: 5 * time.Second}
	rateOfB := func() float64 {
		resp, err := ops.Get("http://" + adminAddr + "/admin/upstreams")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st []struct {
			Name      string
			RateLimit struct {
				Configured float64 `json:"configured_per_second"`
			} `json:"rate_limit"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		for _, u := range st {
			if u.Name == "b" {
				return u.RateLimit.Configured
			}
		}
		return 0
	}

	// The load: 500 a second, a third each of a sync GET on each upstream
	// and an async POST with a key of its own.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		failed   []string // the first 20
		failures atomic.Int64
		accepted []string // the keys of the 202s
		sent     atomic.Int64
		wg       sync.WaitGroup
	)
	fail := func(s string) {
		failures.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(failed) < 20 {
			failed = append(failed, s)
		}
	}
	sem := make(chan struct{}, 256)
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		begin := time.Now()
		for i := 0; i < rate*int(length/time.Second)+rate; i++ { // bounded
			// On a schedule, not a ticker, so that a late tick does not
			// lower the rate.
			select {
			case <-stop:
				return
			case <-time.After(time.Until(begin.Add(time.Duration(i) * time.Second / rate))):
			}
			sem <- struct{}{}
			wg.Add(1)
			sent.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				var req *http.Request
				key := ""
				switch i % 3 {
				case 0:
					req, _ = http.NewRequest(http.MethodGet, base+"/a/v1/items/"+strconv.Itoa(i), nil)
				case 1:
					key = "load-" + strconv.Itoa(i)
					req, _ = http.NewRequest(http.MethodPost, base+"/a/v1/events", strings.NewReader(`{"i":`+strconv.Itoa(i)+`}`))
					req.Header.Set("Idempotency-Key", key)
				default:
					req, _ = http.NewRequest(http.MethodGet, base+"/b/v1/x", nil)
				}
				resp, err := client.Do(req)
				if err != nil {
					fail(fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
					return
				}
				_ = resp.Body.Close()
				want := http.StatusOK
				if key != "" {
					want = http.StatusAccepted
				}
				if resp.StatusCode != want {
					fail(fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Seawall-Error")))
					return
				}
				if key != "" {
					mu.Lock()
					accepted = append(accepted, key)
					mu.Unlock()
				}
			}(i)
		}
	}()

	// The reloads, spread over the run: 20 valid, 2 invalid.
	loadStart := time.Now()
	var slowest time.Duration
	valid := 0
	for i := 0; i < reloads+invalid; i++ {
		time.Sleep(length / time.Duration(reloads+invalid+1))
		if i == 7 || i == 15 {
			write(bad)
			if i == 15 {
				// By signal: the rejection is counted, the problems logged.
				if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// By the CLI, told where the admin API is (it cannot read it
			// from an invalid file): the server's rejection comes back.
			var out, errb bytes.Buffer
			code := run([]string{"reload", "-admin", "http://" + adminAddr, "-token", testAdminToken}, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), cfg+":"+strconv.Itoa(badLine)) || !strings.Contains(errb.String(), "retyr") {
				t.Errorf("reloading an invalid file: exit %d, %s; want it rejected with %s:%d", code, errb.String(), cfg, badLine)
			}
			continue
		}
		f := files[valid%2]
		valid++
		write(f.doc)
		start := time.Now()
		if valid%4 == 0 {
			var out, errb bytes.Buffer
			if code := run([]string{"reload", "-c", cfg, "-token", testAdminToken}, &out, &errb); code != 0 {
				t.Errorf("seawall reload: exit %d %s%s", code, out.String(), errb.String())
			}
		} else if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for rateOfB() != f.rateB {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("reload %d: b's rate is not %v after 10 s", valid, f.rateB)
			}
			time.Sleep(5 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(start))
	}
	time.Sleep(time.Until(loadStart.Add(length))) // the load runs its whole length
	close(stop)
	<-loadDone
	wg.Wait()

	// Every accepted job is delivered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		lost := 0
		for _, k := range accepted {
			if !a.has(k) {
				lost++
			}
		}
		if lost == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted jobs not delivered", lost, len(accepted))
		}
		time.Sleep(200 * time.Millisecond)
	}
	metrics := ""
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := ops.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		if metrics = b.String(); strings.Contains(metrics, fmt.Sprintf(`seawall_config_reloads_total{result="rejected"} %d`, invalid)) {
			break
		}
	}
	for _, want := range []string{
		fmt.Sprintf(`seawall_config_reloads_total{result="applied"} %d`, reloads),
		fmt.Sprintf(`seawall_config_reloads_total{result="rejected"} %d`, invalid),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "reloads"))
		}
	}
	t.Logf("%d requests in %s at %d/s, %d reloads + %d invalid: %d failed, %d jobs accepted and all delivered; b got %d on one URL and %d on the other; slowest reload in force after %s",
		sent.Load(), length, rate, reloads, invalid, failures.Load(), len(accepted), b1.Count(), b2.Count(), slowest)
	if failures.Load() > 0 {
		t.Errorf("%d failed or dropped requests; the first: %v", failures.Load(), failed)
	}
	if slowest > time.Second {
		t.Errorf("a rate change took %s to be in force, want within 1 s", slowest)
	}
	if b1.Count() == 0 || b2.Count() == 0 {
		t.Error("b's URL change did not take: one of its servers got nothing")
	}
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Config reload: with -watch, a change of the file is applied without a
// signal; an invalid change is rejected and the running config stays.
func TestServeWatchReloadsOnChange(t *testing.T) {
	up := httptest.NewServer(fakeapi.New(fakeapi.Behavior{}))
	defer up.Close()
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "seawall.yaml")
	doc := func(upstream string) string {
		return fmt.Sprintf("listen: %s\nadmin: {listen: \"off\"}\nlog: {level: error}\nupstreams:\n  %s: {url: %s}\n", addr, upstream, up.URL)
	}
	if err := os.WriteFile(cfg, []byte(doc("first")), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	proc := startServe(t, buildSeawall(t), cfg, base, "-watch")
	defer func() { _ = proc.Process.Signal(syscall.SIGTERM); _ = proc.Wait() }()
	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if status("/first/x") != 200 || status("/second/x") != 404 {
		t.Fatal("before the change: want first served, second unknown")
	}
	if err := os.WriteFile(cfg, []byte(doc("second")), 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); status("/second/x") != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the changed file was not applied within 15 s")
		}
	}
	if status("/first/x") != 404 {
		t.Error("the upstream taken out of the file is still served")
	}
	if err := os.WriteFile(cfg, []byte(doc("Bad Name")), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // two looks at the file
	if status("/second/x") != 200 {
		t.Error("an invalid change replaced the running config")
	}
}

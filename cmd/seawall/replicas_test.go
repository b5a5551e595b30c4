package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/vendortest"
)

// replica is one running seawall serve of a test's cluster.
type replica struct {
	base, admin string
	cmd         *exec.Cmd
}

// startReplicas runs n seawall processes sharing the Redis at redisURL,
// each with upstream "v" in front of vendor, configured by upstreamYAML
// (indented four spaces) and redisYAML (keys of the redis block). Each
// sends X-Replica: its number (from 1) to the vendor.
func startReplicas(t *testing.T, n int, redisURL, redisYAML, vendor, upstreamYAML string) []*replica {
	t.Helper()
	bin := buildSeawall(t)
	out := make([]*replica, n)
	for i := range out {
		dir := t.TempDir()
		listen, admin := freeAddr(t), freeAddr(t)
		cfg := fmt.Sprintf(`listen: %s
admin: {listen: %q, token: "replica-admin-token-0001"}
data_dir: %s
log: {level: warn}
redis: {url: %q%s}
upstreams:
  v:
    url: %s
    headers: {X-Replica: "%d"}
%s`, listen, admin, dir, redisURL, redisYAML, vendor, i+1, upstreamYAML)
		path := filepath.Join(dir, "seawall.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &replica{base: "http://" + listen, admin: "http://" + admin}
		r.cmd = startServe(t, bin, path, r.base)
		t.Cleanup(func() {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		})
		out[i] = r
	}
	return out
}

// offer sends rate requests a second for d to each replica's path, each
// request on its own goroutine (bounded by rate × d), and returns the
// statuses the app saw, by replica.
func offer(t *testing.T, replicas []*replica, path string, rate int, d time.Duration) []map[int]int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	defer c.CloseIdleConnections()
	seen := make([]map[int]int, len(replicas))
	var mu sync.Mutex
	var wg sync.WaitGroup
	every := time.Second / time.Duration(rate)
	total := int(d / every)
	for i, r := range replicas {
		seen[i] = map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var calls sync.WaitGroup
			for k := range total {
				time.Sleep(time.Until(start.Add(time.Duration(k) * every)))
				calls.Add(1)
				go func() {
					defer calls.Done()
					status := 0
					if resp, err := c.Get(r.base + path); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						status = resp.StatusCode
					}
					mu.Lock()
					seen[i][status]++
					mu.Unlock()
				}()
			}
			calls.Wait()
		}()
	}
	wg.Wait()
	return seen
}

// vendorTiming skips a test that judges pacing at a vendor by the clock
// unless it runs alone, as CI's timing step runs it.
func vendorTiming(t *testing.T) {
	t.Helper()
	if os.Getenv("SEAWALL_VENDOR_TIMING") != "1" {
		t.Skip("judges pacing at nginx by the clock: CI runs it alone (SEAWALL_VENDOR_TIMING=1 go test -run TestReplicas ./cmd/seawall)")
	}
}

// Several replicas, acceptance 1: three replicas sharing a global 20/s
// through Redis, each offered 100 requests a second for 30 s, in front of
// nginx's limit_req at 20/s without burst. Counted at nginx: 0 refusals,
// at least 18 served a second. Before, each replica paced 20/s of its own
// and the vendor saw 60/s.
func TestReplicasShareOneRate(t *testing.T) {
	vendorTiming(t)
	redis := testredis.Start(t)
	vendor := vendortest.StartNginx(t, 20)
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL,
		"    rate_limit: {rate: 20/s, max_wait: 1s}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n")
	const secs = 30
	start := time.Now()
	seen := offer(t, replicas, "/v/ok.json", 100, secs*time.Second)
	hits := vendor.Hits(t)
	var inWindow []vendortest.Hit
	for _, h := range hits {
		if !h.At.Before(start) {
			inWindow = append(inWindow, h)
		}
	}
	n := vendortest.Count(inWindow)
	perSecond := float64(n[200]) / secs
	t.Logf("at nginx over %ds: %d served (%.1f/s), %d refused; the apps saw %v", secs, n[200], perSecond, n[429], seen)
	if n[429] != 0 {
		t.Errorf("nginx refused %d calls: the replicas' pace is not one\n%s", n[429], vendortest.Gaps(inWindow))
	}
	if perSecond < 18 {
		t.Errorf("nginx served %.1f calls a second, want at least 18", perSecond)
	}
	for i, s := range seen {
		if s[0] > 0 || s[502] > 0 || s[503] > 0 {
			t.Errorf("replica %d: the app saw %v, want 200s and 429s only", i+1, s)
		}
	}
}

// pausingVendor serves 200s, noting when each call arrives, and answers
// the first call from replica 1 after pauseAt with 429 Retry-After: secs.
type pausingVendor struct {
	pauseAt time.Time
	secs    int

	mu       sync.Mutex
	arrivals []time.Time
	paused   time.Time // when the 429 was answered
}

func (v *pausingVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	v.mu.Lock()
	v.arrivals = append(v.arrivals, now)
	pause := v.paused.IsZero() && now.After(v.pauseAt) && r.Header.Get("X-Replica") == "1"
	if pause {
		v.paused = now
	}
	v.mu.Unlock()
	if pause {
		w.Header().Set("Retry-After", strconv.Itoa(v.secs))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// Several replicas, acceptance 2: the vendor answers one of replica 1's
// calls 429 with Retry-After: 5. From 200 ms after that answer until the
// pause ends no replica's call reaches the vendor, and in the first second
// after it at most rate + 1 arrive. Before, the other replicas went on
// calling into the pause.
func TestReplicasSharePauses(t *testing.T) {
	vendorTiming(t)
	redis := testredis.Start(t)
	const rate, secs = 20, 5
	v := &pausingVendor{secs: secs}
	vendor := httptest.NewServer(v)
	defer vendor.Close()
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL,
		"    rate_limit: {rate: 20/s, max_wait: 1s}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n")
	v.mu.Lock()
	v.pauseAt = time.Now().Add(3 * time.Second)
	v.mu.Unlock()
	offer(t, replicas, "/v/x", 30, 12*time.Second)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.paused.IsZero() {
		t.Fatal("no call from replica 1 reached the vendor after 3 s: the test proved nothing")
	}
	end := v.paused.Add(secs * time.Second)
	var during, after []time.Duration
	for _, at := range v.arrivals {
		switch {
		case at.After(v.paused.Add(200*time.Millisecond)) && at.Before(end):
			during = append(during, at.Sub(v.paused))
		case !at.Before(end) && at.Before(end.Add(time.Second)):
			after = append(after, at.Sub(v.paused))
		}
	}
	t.Logf("%d calls in all; during the pause (from 200 ms): %d %v; in the second after it: %d", len(v.arrivals), len(during), during, len(after))
	if len(during) > 0 {
		t.Errorf("%d calls reached the vendor during the pause another replica heard: %v after the 429", len(during), during)
	}
	if len(after) > rate+1 {
		t.Errorf("%d calls in the first second after the pause, want at most %d: the release is not paced cluster-wide", len(after), rate+1)
	}
	if len(after) == 0 {
		t.Error("no call in the second after the pause: the replicas did not resume")
	}
}

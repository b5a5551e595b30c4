package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testdb"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
	u "github.com/seawall/seawall/internal/usage"
	"github.com/seawall/seawall/internal/vendortest"
)

// replica is one running seawall serve of a test's cluster.
type replica struct {
	base, admin string
	bin, config string
	cmd         *exec.Cmd
}

// stop ends the replica as an operator would (SIGTERM), waiting for it.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	if err := r.cmd.Wait(); err != nil {
		t.Errorf("replica %s stopped with %v", r.base, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Logf("replica %s took %s to stop", r.base, took.Round(time.Millisecond))
	}
}

// start runs the replica again with its config.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.cmd = startServe(t, r.bin, r.config, r.base)
}

// startReplicas runs n seawall processes sharing the Redis at redisURL,
// each with upstream "v" in front of vendor (empty: upstreamYAML names its
// endpoints), configured by upstreamYAML
// (indented four spaces), redisYAML (keys of the redis block) and top
// (lines of the config's top level). Each sends X-Replica: its number
// (from 1) to the vendor.
func startReplicas(t *testing.T, n int, redisURL, redisYAML, vendor, upstreamYAML string, top ...string) []*replica {
	t.Helper()
	return startReplicasEach(t, n, redisURL, redisYAML, func(int) (string, string, []string) { return vendor, upstreamYAML, top })
}

// startReplicasEach is startReplicas with each replica's vendor, upstream
// YAML and top-level lines from each (i from 0).
func startReplicasEach(t *testing.T, n int, redisURL, redisYAML string, each func(i int) (vendor, upstreamYAML string, top []string)) []*replica {
	t.Helper()
	bin := buildSeawall(t)
	out := make([]*replica, n)
	for i := range out {
		vendor, upstreamYAML, top := each(i)
		urlLine := "" // no vendor: upstreamYAML names the endpoints
		if vendor != "" {
			urlLine = "    url: " + vendor + "\n"
		}
		dir := t.TempDir()
		listen, admin := freeAddr(t), freeAddr(t)
		cfg := fmt.Sprintf(`listen: %s
admin: {listen: %q, token: "replica-admin-token-0001"}
data_dir: %s
log: {level: warn}
redis: {url: %q%s}
%s
upstreams:
  v:
%s    headers: {X-Replica: "%d"}
%s`, listen, admin, dir, redisURL, redisYAML, strings.Join(top, "\n"), urlLine, i+1, upstreamYAML)
		path := filepath.Join(dir, "seawall.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &replica{base: "http://" + listen, admin: "http://" + admin, bin: bin, config: path}
		r.start(t)
		t.Cleanup(func() {
			if r.cmd.ProcessState == nil {
				_ = r.cmd.Process.Kill()
				_ = r.cmd.Wait()
			}
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
	seen, _ := offerTimed(t, replicas, path, rate, d)
	return seen
}

// offerTimed is offer, also returning the longest any request took.
func offerTimed(t *testing.T, replicas []*replica, path string, rate int, d time.Duration) ([]map[int]int, time.Duration) {
	t.Helper()
	var longest time.Duration
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
					began := time.Now()
					if resp, err := c.Get(r.base + path); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						status = resp.StatusCode
					}
					took := time.Since(began)
					mu.Lock()
					seen[i][status]++
					longest = max(longest, took)
					mu.Unlock()
				}()
			}
			calls.Wait()
		}()
	}
	wg.Wait()
	return seen, longest
}

// vendorTiming skips a test that judges pacing at a vendor by the clock
// unless it runs alone, as CI's timing step runs it.
func vendorTiming(t *testing.T) {
	t.Helper()
	alone(t, "judges pacing at nginx by the clock")
}

// alone skips a test that must not share the machine with other packages'
// tests (why says why) unless it runs in CI's replicas step, where each
// runs by itself.
func alone(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("SEAWALL_VENDOR_TIMING") != "1" {
		t.Skip(why + ": CI runs it alone (SEAWALL_VENDOR_TIMING=1 go test -run TestReplicas ./cmd/seawall)")
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
	tap := vendor.Tap(t)
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL,
		"    rate_limit: {rate: 20/s, max_wait: 1s}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n")
	const secs = 30
	scripts0 := testredis.ScriptCalls(redis.Port)
	start := time.Now()
	seen := offer(t, replicas, "/v/ok.json", 100, secs*time.Second)
	scripts := testredis.ScriptCalls(redis.Port) - scripts0
	hits := vendor.Hits(t)
	var inWindow []vendortest.Hit
	for _, h := range hits {
		if !h.At.Before(start) {
			inWindow = append(inWindow, h)
		}
	}
	n := vendortest.Count(inWindow)
	perSecond := float64(n[200]) / secs
	t.Logf("at nginx over %ds: %d served (%.1f/s), %d refused; the apps saw %v; Redis ran %d scripts (%.2f per call served, heartbeats included)",
		secs, n[200], perSecond, n[429], seen, scripts, float64(scripts)/float64(max(n[200], 1)))
	vendor.CheckRefusals(t, tap, n[429], vendortest.Gaps(inWindow))
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

// adminGet reads a replica's admin endpoint into v; false when it could
// not be read.
func (r *replica) adminGet(path string, v any) bool {
	req, _ := http.NewRequest(http.MethodGet, r.admin+path, nil)
	req.Header.Set("Authorization", "Bearer replica-admin-token-0001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v) == nil
}

// clusterSize asks a replica's admin API how many live replicas it sees.
func clusterSize(t *testing.T, r *replica) int {
	t.Helper()
	var v struct {
		Replicas []struct{ ID string } `json:"replicas"`
	}
	if !r.adminGet("/admin/cluster", &v) {
		return -1
	}
	return len(v.Replicas)
}

// Several replicas, acceptance 4: one of three replicas is killed
// (SIGKILL) under load. The other two keep the global rate: nginx refuses
// nothing and serves at least 18 a second from 2 s after the kill; they
// list two live replicas within 10 s.
func TestReplicasSurviveAKill(t *testing.T) {
	vendorTiming(t)
	redis := testredis.Start(t)
	vendor := vendortest.StartNginx(t, 20)
	tap := vendor.Tap(t)
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL,
		"    rate_limit: {rate: 20/s, max_wait: 1s}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n")
	waitForReplicas(t, replicas, 3)
	const secs = 20
	start := time.Now()
	killAt := start.Add(6 * time.Second)
	var listedTwo time.Duration
	go func() {
		time.Sleep(time.Until(killAt))
		_ = replicas[2].cmd.Process.Kill()
	}()
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		time.Sleep(time.Until(killAt))
		for d := time.Now().Add(15 * time.Second); time.Now().Before(d); time.Sleep(100 * time.Millisecond) {
			if clusterSize(t, replicas[0]) == 2 {
				listedTwo = time.Since(killAt)
				return
			}
		}
	}()
	offer(t, replicas, "/v/ok.json", 100, secs*time.Second)
	<-watch
	var after, hits []vendortest.Hit
	refused := 0
	perSec := make([]int, secs+1)
	for _, h := range vendor.Hits(t) {
		if h.At.Before(start) {
			continue
		}
		hits = append(hits, h)
		if sec := int(h.At.Sub(start) / time.Second); sec < len(perSec) && h.Status == 200 {
			perSec[sec]++
		}
		if h.Status != 200 {
			refused++
		}
		if !h.At.Before(killAt.Add(2*time.Second)) && h.At.Before(start.Add(secs*time.Second)) {
			after = append(after, h)
		}
	}
	window := start.Add(secs * time.Second).Sub(killAt.Add(2 * time.Second)).Seconds()
	perSecond := float64(vendortest.Count(after)[200]) / window
	t.Logf("nginx refused %d; from 2 s after the kill it served %.1f/s (each second from the start: %v); two replicas listed %s after the kill", refused, perSecond, perSec, listedTwo)
	vendor.CheckRefusals(t, tap, refused, vendortest.Gaps(hits))
	if perSecond < 18 {
		t.Errorf("from 2 s after the kill, nginx served %.1f calls a second, want at least 18", perSecond)
	}
	if listedTwo == 0 || listedTwo > 10*time.Second {
		t.Errorf("two live replicas listed %s after the kill, want within 10 s", listedTwo)
	}
}

// degraded is what each replica's /admin/upstreams says of upstream v's
// rate limit while Redis does not answer ("" while shared).
func degraded(t *testing.T, replicas []*replica) []string {
	t.Helper()
	out := make([]string, len(replicas))
	for i, r := range replicas {
		var ups []struct {
			RateLimit struct {
				Degraded string `json:"degraded"`
			} `json:"rate_limit"`
		}
		switch {
		case !r.adminGet("/admin/upstreams", &ups):
			out[i] = "unreachable"
		case len(ups) == 1:
			out[i] = ups[0].RateLimit.Degraded
		}
	}
	return out
}

// sharedAgainWithin polls until no replica is degraded, and says how long
// that took (or d when it did not happen).
func sharedAgainWithin(t *testing.T, replicas []*replica, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		all := true
		for _, s := range degraded(t, replicas) {
			all = all && s == ""
		}
		if all {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// Several replicas, acceptance 5: Redis frozen (SIGSTOP, 20 s: a hang, not
// a refusal), then killed and restarted empty, under load, for each
// policy. With on_failure: local the replicas take turns at their share
// of the rate: nginx (limit_req 20r/s, no burst) refuses nothing; with
// closed they answer 503 limiter-unavailable and the vendor gets nothing. Either way no
// request waits past max_wait + redis.timeout (with 300 ms for the HTTP
// round trip and scheduling), nothing crashes, and the limit is shared
// again within 2 s of Redis answering.
func TestReplicasWhenRedisGoesAway(t *testing.T) {
	vendorTiming(t)
	const limits = "    rate_limit: {rate: 20/s, max_wait: 1s}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n"
	const bound = time.Second + 50*time.Millisecond + 300*time.Millisecond
	t.Run("local", func(t *testing.T) {
		redis := testredis.Start(t)
		vendor := vendortest.StartNginx(t, 20)
		tap := vendor.Tap(t)
		replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL, limits)
		waitForReplicas(t, replicas, 3)
		start := time.Now()
		var back []time.Duration
		var states [][]string
		timeline := make(chan struct{})
		go func() {
			defer close(timeline)
			time.Sleep(6 * time.Second)
			redis.Freeze()
			time.Sleep(3 * time.Second)
			states = append(states, degraded(t, replicas))
			time.Sleep(17 * time.Second)
			redis.Thaw()
			back = append(back, sharedAgainWithin(t, replicas, 5*time.Second))
			time.Sleep(3 * time.Second)
			redis.Kill()
			time.Sleep(3 * time.Second)
			states = append(states, degraded(t, replicas))
			redis.Restart(t)
			back = append(back, sharedAgainWithin(t, replicas, 5*time.Second))
		}()
		seen, longest := offerTimed(t, replicas, "/v/ok.json", 100, 42*time.Second)
		<-timeline
		n := map[int]int{}
		perSecond := make([]int, 43)
		var refusedAt []string
		hits := vendor.Hits(t)
		for _, h := range hits {
			if !h.At.Before(start) {
				n[h.Status]++
				if sec := int(h.At.Sub(start) / time.Second); sec < len(perSecond) && h.Status == 200 {
					perSecond[sec]++
				}
				if h.Status != 200 {
					refusedAt = append(refusedAt, h.At.Sub(start).Round(time.Millisecond).String())
				}
			}
		}
		t.Logf("served each second: %v; refused at %v", perSecond, refusedAt)
		t.Logf("nginx: %v over 42 s (%.1f/s served); longest request %s; while Redis was frozen, then killed: %v; shared again after %v; the apps saw %v",
			n, float64(n[200])/42, longest, states, back, seen)
		vendor.CheckRefusals(t, tap, n[429], vendortest.Gaps(hits))
		if longest > bound {
			t.Errorf("a request took %s, past max_wait + redis.timeout", longest)
		}
		for i, st := range states {
			for r, s := range st {
				if !strings.HasPrefix(s, "local turn ") || !strings.HasSuffix(s, " of 3") {
					t.Errorf("outage %d, replica %d: degraded %q, want a local turn of 3", i+1, r+1, s)
				}
			}
		}
		for i, d := range back {
			if d > 2*time.Second {
				t.Errorf("outage %d: shared again %s after Redis answered, want within 2 s", i+1, d)
			}
		}
		for i, s := range seen {
			if s[0] > 0 || s[502] > 0 || s[503] > 0 {
				t.Errorf("replica %d: the app saw %v, want 200s and 429s only", i+1, s)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		redis := testredis.Start(t)
		vendor := vendortest.StartNginx(t, 20)
		replicas := startReplicas(t, 3, redis.URL(), ", on_failure: closed", vendor.URL, limits)
		waitForReplicas(t, replicas, 3)
		type outage struct{ from, to time.Time }
		var outages []outage
		var back []time.Duration
		timeline := make(chan struct{})
		go func() {
			defer close(timeline)
			time.Sleep(4 * time.Second)
			o := outage{from: time.Now()}
			redis.Freeze()
			time.Sleep(20 * time.Second)
			o.to = time.Now()
			redis.Thaw()
			outages = append(outages, o)
			back = append(back, sharedAgainWithin(t, replicas, 5*time.Second))
			time.Sleep(3 * time.Second)
			o = outage{from: time.Now()}
			redis.Kill()
			time.Sleep(3 * time.Second)
			o.to = time.Now()
			redis.Restart(t)
			outages = append(outages, o)
			back = append(back, sharedAgainWithin(t, replicas, 5*time.Second))
		}()
		seen, longest := offerTimed(t, replicas, "/v/ok.json", 50, 40*time.Second)
		<-timeline
		during := make([]int, len(outages))
		for _, h := range vendor.Hits(t) {
			for i, o := range outages {
				if h.At.After(o.from.Add(200*time.Millisecond)) && h.At.Before(o.to) {
					during[i]++
				}
			}
		}
		t.Logf("vendor calls while Redis was frozen 20 s, then killed 3 s: %v; longest request %s; shared again after %v; the apps saw %v", during, longest, back, seen)
		for i, n := range during {
			if n != 0 {
				t.Errorf("outage %d: %d calls reached the vendor while the shared limiter was unreachable and on_failure is closed", i+1, n)
			}
		}
		for i, s := range seen {
			if s[503] == 0 {
				t.Errorf("replica %d: no 503 limiter-unavailable while Redis was away: %v", i+1, s)
			}
			if s[0] > 0 {
				t.Errorf("replica %d: %d requests failed outright", i+1, s[0])
			}
		}
		if longest > bound {
			t.Errorf("a request took %s, past max_wait + redis.timeout", longest)
		}
		for i, d := range back {
			if d > 2*time.Second {
				t.Errorf("outage %d: shared again %s after Redis answered, want within 2 s", i+1, d)
			}
		}
	})
}

// waitForReplicas waits until the first replica lists n live ones.
func waitForReplicas(t *testing.T, replicas []*replica, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); clusterSize(t, replicas[0]) != n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replica 1 sees %d replicas, want %d", clusterSize(t, replicas[0]), n)
		}
	}
}

// seawall cluster lists the live replicas through a replica's admin API,
// marking the one it asked; without a redis block it says so.
func TestClusterCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two seawall processes and a redis-server: the full run runs it")
	}
	redis := testredis.Start(t)
	vendor := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer vendor.Close()
	replicas := startReplicas(t, 2, redis.URL(), "", vendor.URL, "")
	waitForReplicas(t, replicas, 2)
	var out, errOut strings.Builder
	code := run([]string{"cluster", "-admin", replicas[0].admin, "-token", "replica-admin-token-0001"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "2 live replica(s); Redis answers") || strings.Count(out.String(), "(this one)") != 1 ||
		strings.Count(out.String(), " v\n") != 2 {
		t.Errorf("seawall cluster: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"cluster", "-json", "-admin", replicas[1].admin, "-token", "replica-admin-token-0001"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), `"shared": true`) || !strings.Contains(out.String(), `"redis_up": true`) {
		t.Errorf("seawall cluster -json: exit %d\n%s", code, out.String())
	}
}

// Two live replicas with different limits for one global upstream are
// named in /admin/cluster's disagree, and each raises replicas.disagree:
// they would fight over one pace.
func TestDisagreeingReplicasAreNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two seawall processes and a redis-server: the full run runs it")
	}
	redis := testredis.Start(t)
	vendor := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer vendor.Close()
	a := startReplicas(t, 1, redis.URL(), "", vendor.URL, "    rate_limit: {rate: 10/s}\n")
	b := startReplicas(t, 1, redis.URL(), "", vendor.URL, "    rate_limit: {rate: 20/s}\n")
	var view struct {
		Disagree []string `json:"disagree"`
	}
	for deadline := time.Now().Add(5 * time.Second); len(view.Disagree) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		a[0].adminGet("/admin/cluster", &view)
	}
	if strings.Join(view.Disagree, ",") != "v" {
		t.Fatalf("disagree = %v, want [v]", view.Disagree)
	}
	var events []struct{ Type, Upstream string }
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b[0].adminGet("/admin/events", &events)
		if slices.ContainsFunc(events, func(e struct{ Type, Upstream string }) bool {
			return e.Type == "replicas.disagree" && e.Upstream == "v"
		}) {
			return
		}
	}
	t.Errorf("no replicas.disagree event for v: %+v", events)
}

// usageOf reads upstream v's usage from a replica's admin API.
func usageOf(t *testing.T, r *replica) u.Report {
	t.Helper()
	var reports []u.Report
	if !r.adminGet("/admin/usage", &reports) {
		t.Fatalf("replica %s: /admin/usage could not be read", r.base)
	}
	for _, rep := range reports {
		if rep.Upstream == "v" {
			return rep
		}
	}
	t.Fatalf("replica %s: no usage of v in %+v", r.base, reports)
	return u.Report{}
}

// Several replicas, acceptance 3: three replicas share a daily quota of
// 300 through Redis, under load. Counted at nginx: exactly 300 calls reach
// the vendor; every replica then answers 429 quota-exhausted, as
// on_exhausted: reject says; /admin/usage shows the cluster's 300 and each
// replica's part. After every replica stops and Redis restarts empty, the
// replicas (their counts saved in the shared PostgreSQL job store) still
// count 300 and send nothing more. Before, each replica kept a quota of its
// own and the vendor saw 900.
func TestReplicasShareOneQuota(t *testing.T) {
	alone(t, "three replicas, nginx, Redis and PostgreSQL under load, restarted (about 15 s)")
	redis := testredis.Start(t)
	vendor := vendortest.StartNginx(t, 1000) // not the subject here: the quota is
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL,
		"    rate_limit: {rate: 150/s, max_wait: 1s}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n    quota: {daily: 300}\n",
		fmt.Sprintf("jobs: {store: %q}", testdb.PostgresURL(t)))
	waitForReplicas(t, replicas, 3)
	seen := offer(t, replicas, "/v/ok.json", 60, 6*time.Second)
	calls := len(vendor.Hits(t))
	t.Logf("at nginx: %d calls %v; the apps saw %v", calls, vendortest.Count(vendor.Hits(t)), seen)
	if calls != 300 {
		t.Fatalf("%d calls reached nginx, want exactly 300", calls)
	}
	for i, r := range replicas {
		resp, err := http.Get(r.base + "/v/ok.json")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "quota-exhausted") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("replica %d after the quota: %d %s, want 429 quota-exhausted with Retry-After", i+1, resp.StatusCode, body)
		}
	}
	var rep u.Report
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if rep = usageOf(t, replicas[0]); rep.Cluster != nil && len(rep.Cluster.Today.Replicas) == 3 {
			break
		}
	}
	var parts int64
	if rep.Cluster != nil {
		for _, p := range rep.Cluster.Today.Replicas {
			parts += p
		}
	}
	if rep.Cluster == nil || rep.Cluster.Today.Billable != 300 || parts != 300 || len(rep.Cluster.Today.Replicas) != 3 || rep.Quota.UsedToday != 300 {
		t.Errorf("replica 1's usage: cluster %+v, quota %+v; want 300 in all, in three parts", rep.Cluster, rep.Quota)
	}
	var out, errOut strings.Builder
	if code := run([]string{"usage", "-admin", replicas[0].admin, "-token", "replica-admin-token-0001"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "100.0%") || !regexp.MustCompile(`(?m)^v +300 +300 +`).MatchString(out.String()) ||
		strings.Count(out.String(), "(this one)") != 1 {
		t.Errorf("seawall usage: exit %d, want the quota 100%% used and v's 300 calls across the replicas\n%s%s", code, out.String(), errOut.String())
	}

	stopping := time.Now()
	for _, r := range replicas {
		r.stop(t)
	}
	t.Logf("the replicas stopped in %s", time.Since(stopping).Round(time.Millisecond))
	redis.Kill()
	redis.Restart(t)
	for _, r := range replicas {
		r.start(t)
	}
	waitForReplicas(t, replicas, 3)
	seen = offer(t, replicas, "/v/ok.json", 20, 3*time.Second)
	calls = len(vendor.Hits(t))
	t.Logf("after every replica and Redis restarted: %d calls at nginx; the apps saw %v", calls, seen)
	if calls != 300 {
		t.Errorf("after every replica and Redis restarted, %d calls reached nginx, want still 300", calls)
	}
	for i, r := range replicas {
		if q := usageOf(t, r).Quota; q == nil || q.UsedToday != 300 {
			t.Errorf("replica %d after the restarts reports the quota %+v, want 300 used", i+1, q)
		}
	}
}

// adminDo sends method to a replica's admin path and returns the status
// and body.
func (r *replica) adminDo(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, r.admin+path, nil)
	req.Header.Set("Authorization", "Bearer replica-admin-token-0001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// zoneVendor counts the calls one zone's endpoint receives, and when.
type zoneVendor struct {
	mu  sync.Mutex
	ats []time.Time
}

func (z *zoneVendor) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	z.mu.Lock()
	z.ats = append(z.ats, time.Now())
	z.mu.Unlock()
}

// last is when the latest call arrived.
func (z *zoneVendor) last() time.Time {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.ats[len(z.ats)-1]
}

// since counts the calls that arrived at or after t.
func (z *zoneVendor) since(t time.Time) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := 0
	for _, at := range z.ats {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// Several replicas, one view, item 4: a shift made on replica 1 is in
// force on replicas 2 and 3 within a second (they send nothing more to the
// shifted zone); it is still in force after all three restart, and after
// Redis restarts empty; removed on replica 2, every replica sends to the
// zone again. Before, a shift was
// the replica's own and gone at its restart.
func TestReplicasShareShifts(t *testing.T) {
	alone(t, "judges within a second, with three replicas restarted under load (about 15 s)")
	redis := testredis.Start(t)
	za, zb := &zoneVendor{}, &zoneVendor{}
	a, b := httptest.NewServer(za), httptest.NewServer(zb)
	defer a.Close()
	defer b.Close()
	replicas := startReplicas(t, 3, redis.URL(), "", "", fmt.Sprintf(
		"    endpoints:\n      - {url: %q, zone: a}\n      - {url: %q, zone: b}\n    retry: {max_attempts: 1}\n    breaker: {disabled: true}\n", a.URL, b.URL))
	waitForReplicas(t, replicas, 3)
	before := time.Now()
	offer(t, replicas, "/v/x", 20, time.Second)
	if za.since(before) == 0 || zb.since(before) == 0 {
		t.Fatalf("before the shift, zone a got %d calls and b %d: want both some", za.since(before), zb.since(before))
	}

	status, body := replicas[0].adminDo(t, http.MethodPost, "/admin/shifts?upstream=v&zone=a&for=5m")
	shifted := time.Now()
	var sh struct{ ID string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &sh) != nil || sh.ID == "" {
		t.Fatalf("shift on replica 1: %d %s", status, body)
	}
	offer(t, replicas[1:], "/v/x", 20, 2*time.Second)
	if n := za.since(shifted.Add(time.Second)); n != 0 {
		t.Errorf("replicas 2 and 3 sent zone a %d calls from 1 s after the shift on replica 1, want none", n)
	}
	t.Logf("zone a got %d calls from replicas 2 and 3 after the shift, the last %s after it", za.since(shifted), za.last().Sub(shifted).Round(time.Millisecond))

	for _, r := range replicas {
		r.stop(t)
	}
	for _, r := range replicas {
		r.start(t)
	}
	restarted := time.Now()
	offer(t, replicas, "/v/x", 20, time.Second)
	if n := za.since(restarted); n != 0 {
		t.Errorf("after all three restarted, zone a got %d calls: the shift was lost", n)
	}
	var listed []struct {
		ID     string
		Shared bool
	}
	if !replicas[2].adminGet("/admin/shifts", &listed) || len(listed) != 1 || listed[0].ID != sh.ID || !listed[0].Shared {
		t.Errorf("replica 3 lists the shifts %+v, want %s, shared", listed, sh.ID)
	}
	var out, errOut strings.Builder
	if code := run([]string{"shift", "list", "-admin", replicas[2].admin, "-token", "replica-admin-token-0001"}, &out, &errOut); code != 0 ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(sh.ID)+` +v +zone a .* every replica$`).MatchString(out.String()) {
		t.Errorf("seawall shift list on replica 3: exit %d, want %s in force on every replica\n%s%s", code, sh.ID, out.String(), errOut.String())
	}

	// Redis restarts empty: the replicas keep the shift and put it back,
	// so that a replica started afterwards has it too.
	redis.Kill()
	redis.Restart(t)
	// The heartbeat finds Redis back and the replicas put the shift
	// back: waited for in Redis itself, not for a fixed time, which a
	// slow host outran once.
	back := time.Now()
	for len(redis.Keys("*:shift:"+sh.ID)) == 0 {
		if time.Since(back) > 20*time.Second {
			t.Fatalf("no replica put shift %s back in Redis within 20 s of its restart", sh.ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the shift was back in Redis %v after its restart", time.Since(back).Round(time.Millisecond))
	replicas[1].stop(t)
	replicas[1].start(t)
	// The new replica reads the shifts at its first heartbeat, which
	// follows its start (its clock sampled first): within a few seconds.
	if took, ok := testwait.Within(5*time.Second, func() bool {
		listed = nil
		return replicas[1].adminGet("/admin/shifts", &listed) && len(listed) == 1 && listed[0].ID == sh.ID
	}); !ok {
		t.Errorf("a replica started after Redis restarted empty lists the shifts %+v after 5 s, want %s", listed, sh.ID)
	} else {
		t.Logf("the replica started after Redis restarted listed the shift %v after its start", took.Round(time.Millisecond))
	}

	if status, body := replicas[1].adminDo(t, http.MethodDelete, "/admin/shifts/"+sh.ID); status != http.StatusOK {
		t.Fatalf("removing the shift on replica 2: %d %s", status, body)
	}
	removed := time.Now()
	offer(t, replicas[:1], "/v/x", 20, 2*time.Second)
	if za.since(removed.Add(time.Second)) == 0 {
		t.Errorf("replica 1 sent zone a nothing from a second after the shift was removed on replica 2 (%d calls before)", za.since(removed))
	}
}

// Several replicas, one view, item 6: three replicas share one PostgreSQL
// job store. About 10,000 jobs are accepted across them while replica 2 is
// SIGKILLed with deliveries in flight: every accepted job is delivered (by
// whichever replica), none under a key other than its own, and a job
// accepted by the killed replica is answered by the others; one
// Idempotency-Key sent to two replicas is one job.
func TestReplicasShareOneQueue(t *testing.T) {
	alone(t, "10,000 jobs through three replicas and PostgreSQL, one killed (about 40 s): a load that would slow the other packages' timing tests")
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("SEAWALL_QUEUE_JOBS")); err == nil && v > 0 {
		n = v
	}
	deliveries := newJobVendor(5 * time.Millisecond)
	vendor := httptest.NewServer(deliveries)
	defer vendor.Close()
	redis := testredis.Start(t)
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL, "    mode: async\n    timeouts: {overall: 2s}\n",
		fmt.Sprintf("jobs: {store: %q, base_delay: 20ms, max_delay: 200ms, max_attempts: 25, visibility_timeout: 3s, concurrency: 8}", testdb.PostgresURL(t)))
	delivered := deliveries.delivered

	type job struct{ body, by string }
	var amu sync.Mutex
	accepted := map[string]job{} // job id -> its body, which no other job has, and the replica that took it
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	send := func(i int, r *replica) {
		body := `{"i":` + strconv.Itoa(i) + `}`
		req, _ := http.NewRequest(http.MethodPost, r.base+"/v/events", strings.NewReader(body))
		if i%2 == 0 {
			req.Header.Set("Idempotency-Key", "app-"+strconv.Itoa(i))
		}
		resp, err := client.Do(req)
		if err != nil {
			return // the replica was killed mid-request: not accepted
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			amu.Lock()
			accepted[resp.Header.Get("Seawall-Job-Id")] = job{body, r.base}
			amu.Unlock()
		}
	}
	sendRange := func(from, to int, live []*replica) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					send(i, live[i%len(live)])
				}
			}()
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	// One Idempotency-Key sent to two replicas is one job.
	var ids []string
	for _, r := range []*replica{replicas[0], replicas[2]} {
		req, _ := http.NewRequest(http.MethodPost, r.base+"/v/events", strings.NewReader(`{"cross":1}`))
		req.Header.Set("Idempotency-Key", "cross-replica-1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		ids = append(ids, resp.Header.Get("Seawall-Job-Id"))
		accepted[resp.Header.Get("Seawall-Job-Id")] = job{`{"cross":1}`, r.base}
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("one Idempotency-Key sent to replicas 1 and 3 made jobs %q and %q, want one", ids[0], ids[1])
	}
	start := time.Now()
	sendRange(0, n/2, replicas)
	// Kill replica 2 once some of its jobs are delivered and others, most
	// likely, in flight. Bounded: a fast run may have delivered them all.
	for deadline := time.Now().Add(10 * time.Second); delivered() < n/4 && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	_ = replicas[1].cmd.Process.Signal(syscall.SIGKILL)
	_ = replicas[1].cmd.Wait()
	killed := time.Now()
	t.Logf("SIGKILL of replica 2 with %d accepted, %d delivered", len(accepted), delivered())
	live := []*replica{replicas[0], replicas[2]}
	sendRange(n/2, n, live)

	for deadline := time.Now().Add(3 * time.Minute); delivered() < len(accepted); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	took := time.Since(start)
	// The killed replica's jobs are answered by the others; those it had
	// running come back after visibility_timeout, found within River's
	// rescue interval (30 s).
	var pending []string
	for id, j := range accepted {
		if j.by == replicas[1].base {
			pending = append(pending, id)
		}
	}
	checked := len(pending)
	for deadline := time.Now().Add(2 * time.Minute); len(pending) > 0; time.Sleep(time.Second) {
		pending = slices.DeleteFunc(pending, func(id string) bool {
			return jobState(t, client, live[len(id)%2].base, id) == "succeeded"
		})
		if time.Now().After(deadline) {
			t.Errorf("%d of the killed replica's %d jobs are not succeeded on the other replicas, e.g. %s: %s",
				len(pending), checked, pending[0], jobState(t, client, live[0].base, pending[0]))
			break
		}
	}
	t.Logf("the killed replica's %d jobs all succeeded, seen from the others, %s after the kill", checked, time.Since(killed).Round(time.Millisecond))
	var bodies []string
	for _, j := range accepted {
		bodies = append(bodies, j.body)
	}
	lost, manyKeys, dups, keys := deliveries.tally(t, bodies)
	t.Logf("%d sent to three replicas, %d accepted (202), replica 2 SIGKILLed: lost %d, duplicate deliveries %d (under the job's own key), jobs with more than one key %d; all delivered %s after the first was sent",
		n, len(accepted), lost, dups, manyKeys, took.Round(time.Millisecond))
	if lost > 0 || manyKeys > 0 || keys > len(accepted) || checked == 0 {
		t.Errorf("lost %d accepted jobs; %d jobs delivered under several keys; %d keys delivered for %d accepted jobs; %d of the killed replica's jobs checked",
			lost, manyKeys, keys, len(accepted), checked)
	}
	if len(accepted) < n*9/10 {
		t.Errorf("only %d of %d jobs were accepted", len(accepted), n)
	}
}

// failingVendor answers every call 500, noting when and from which
// replica.
type failingVendor struct {
	mu    sync.Mutex
	calls []vendorCall
}

type vendorCall struct {
	at      time.Time
	replica string
}

func (v *failingVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	v.calls = append(v.calls, vendorCall{time.Now(), r.Header.Get("X-Replica")})
	v.mu.Unlock()
	w.WriteHeader(http.StatusInternalServerError)
}

// Several replicas, one view, item 1: the vendor fails every call. Within
// a second of the first replica's breaker opening every replica fails
// fast (p99 under 5 ms), and in each half-open interval the vendor
// receives the probes of one replica only. Before, each replica opened on
// its own calls and sent its own probes.
func TestReplicasShareOneBreaker(t *testing.T) {
	alone(t, "judges the fail-fast p99 by the clock (three replicas, 8 s)")
	redis := testredis.Start(t)
	fv := &failingVendor{}
	vendor := httptest.NewServer(fv)
	defer vendor.Close()
	const probes = 2
	replicas := startReplicas(t, 3, redis.URL(), "", vendor.URL, fmt.Sprintf(
		"    retry: {max_attempts: 1}\n    breaker: {window: 30s, min_calls: 5, failure_rate: 50, open_duration: 1s, max_open_duration: 1s, half_open_calls: %d}\n", probes))
	waitForReplicas(t, replicas, 3)

	var mu sync.Mutex
	var fast []time.Duration // the breaker's refusals, as the app waited for them
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	start := time.Now()
	for _, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 400 && time.Since(start) < 8*time.Second; k++ {
				began := time.Now()
				resp, err := client.Get(r.base + "/v/x")
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.Header.Get("Seawall-Error") == "circuit-open" {
					mu.Lock()
					fast = append(fast, time.Since(began))
					mu.Unlock()
				}
				time.Sleep(time.Until(began.Add(40 * time.Millisecond)))
			}
		}()
	}
	wg.Wait()

	fv.mu.Lock()
	calls := slices.Clone(fv.calls)
	fv.mu.Unlock()
	// The first replica to open did so at its fifth call.
	count := map[string]int{}
	var firstOpen time.Time
	for _, c := range calls {
		if count[c.replica]++; count[c.replica] == 5 && firstOpen.IsZero() {
			firstOpen = c.at
		}
	}
	// From a second after it, the vendor sees only probes: bursts of at
	// most half_open_calls calls, each burst from one replica.
	var bursts [][]vendorCall
	for _, c := range calls {
		if c.at.Before(firstOpen.Add(time.Second)) {
			continue
		}
		if n := len(bursts); n > 0 && c.at.Sub(bursts[n-1][len(bursts[n-1])-1].at) < 300*time.Millisecond {
			bursts[n-1] = append(bursts[n-1], c)
			continue
		}
		bursts = append(bursts, []vendorCall{c})
	}
	from := map[string]int{}
	for i, b := range bursts {
		who := map[string]bool{}
		for _, c := range b {
			who[c.replica] = true
		}
		for r := range who {
			from[r]++
		}
		if len(b) > probes || len(who) != 1 {
			t.Errorf("half-open interval %d: %d calls from replicas %v, want at most %d probes from one replica", i+1, len(b), slices.Sorted(maps.Keys(who)), probes)
		}
	}
	slices.Sort(fast)
	p99 := time.Duration(0)
	if len(fast) > 0 {
		p99 = fast[len(fast)*99/100]
	}
	t.Logf("%d calls at the vendor, the first replica open at %s; after a second, %d half-open intervals, probed by replicas %v; %d fail-fast answers, p99 %s",
		len(calls), firstOpen.Sub(start).Round(time.Millisecond), len(bursts), from, len(fast), p99)
	if len(bursts) < 3 || len(fast) < 300 {
		t.Errorf("%d half-open intervals and %d fail-fast answers in 8 s: the breakers did not open and probe", len(bursts), len(fast))
	}
	if p99 >= 5*time.Millisecond {
		t.Errorf("fail-fast p99 %s, want under 5 ms", p99)
	}
}

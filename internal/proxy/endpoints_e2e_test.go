package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/vendortest"
)

// The acceptance tests of endpoint health (docs/endpoints.md): real fake
// vendors as endpoints in zones behind a real Seawall, app traffic from
// workers, and the pool's state read as an operator reads it.

// endpointE2EEnv runs them. They take minutes of wall-clock time and judge
// detection within seconds, which the race detector's slowdown on a small
// machine would blur; .ci/run runs them in a step of their own.
const endpointE2EEnv = "SEAWALL_ENDPOINT_E2E"

func endpointE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(endpointE2EEnv) == "" {
		t.Skip("minutes of traffic timed in seconds: run with " + endpointE2EEnv + "=1 (as .ci/run does, without -race)")
	}
}

// member is one endpoint: a fake vendor on its own port.
type member struct {
	name, zone string
	fake       *fakeapi.Server
	srv        *httptest.Server
}

// fleet is a Seawall whose upstream "api" has the members as endpoints.
type fleet struct {
	t  *testing.T
	s  *stack
	ms []*member
}

// healthy is a member's normal behaviour: a quick answer naming it.
func healthy(name string) fakeapi.Behavior {
	return fakeapi.Behavior{Headers: map[string]string{"X-Endpoint": name},
		LatencyMin: fakeapi.Duration(time.Millisecond), LatencyMax: fakeapi.Duration(3 * time.Millisecond)}
}

func slow(name string, d time.Duration) fakeapi.Behavior {
	b := healthy(name)
	b.LatencyMin, b.LatencyMax = fakeapi.Duration(d), fakeapi.Duration(d+3*time.Millisecond)
	return b
}

func failing(name string, rate float64) fakeapi.Behavior {
	b := healthy(name)
	b.ErrorRate = rate
	return b
}

// newFleet starts members named "a", "b"… (or "a1" for a second in a
// zone) in the zones given, and Seawall in front; top is root YAML, extra
// upstream YAML (indented four spaces).
func newFleet(t *testing.T, top, extra string, zones ...string) *fleet {
	t.Helper()
	f := &fleet{t: t}
	var eps strings.Builder
	seen := map[string]int{}
	for _, z := range zones {
		seen[z]++
		name := z
		if seen[z] > 1 {
			name = fmt.Sprintf("%s%d", z, seen[z])
		}
		m := &member{name: name, zone: z, fake: fakeapi.New(healthy(name))}
		m.srv = httptest.NewServer(m.fake)
		t.Cleanup(m.srv.Close)
		f.ms = append(f.ms, m)
		fmt.Fprintf(&eps, "      - {url: %q, zone: %s}\n", m.srv.URL, z)
	}
	doc := "admin: {listen: \"off\"}\n" + top + "\nupstreams:\n  api:\n    endpoints:\n" + eps.String() + extra
	f.s = newStackDoc(t, doc)
	return f
}

func (f *fleet) member(name string) *member {
	for _, m := range f.ms {
		if m.name == name {
			return m
		}
	}
	f.t.Fatalf("no member %s", name)
	return nil
}

// states is each member's state as GET /admin/upstreams shows it.
func (f *fleet) states() map[string]endpoint.State {
	out := map[string]endpoint.State{}
	for _, u := range f.s.ups.Status() {
		for _, r := range u.Endpoints {
			for _, m := range f.ms {
				if r.URL == m.srv.URL {
					out[m.name] = r.State
				}
			}
		}
	}
	return out
}

// waitFor polls cond every 20ms until it holds, and says when; it fails
// the test past limit.
func (f *fleet) waitFor(what string, limit time.Duration, cond func() bool) time.Time {
	f.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s (states %v)", what, limit, f.states())
		}
	}
}

// sample is what the app saw of one request.
type sample struct {
	start, end time.Time
	status     int
	endpoint   string // X-Endpoint: which member answered
	source     string // Seawall-Source
	err        error
	path       string
}

// load is app traffic: workers each sending GETs with a pause between.
type load struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	wg      sync.WaitGroup
}

// run starts workers sending GET /api/items/{n} with gap between each
// one's calls, for at most limit.
func (f *fleet) run(workers int, gap, limit time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	var mu sync.Mutex
	n := 0
	deadline := time.Now().Add(limit)
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				mu.Lock()
				n++
				path := fmt.Sprintf("/api/items/%d", n)
				mu.Unlock()
				s := sample{start: time.Now(), path: path[len("/api"):]}
				resp, err := f.s.c.Get(f.s.sw.URL + path)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					s.status, s.endpoint, s.source = resp.StatusCode, resp.Header.Get("X-Endpoint"), resp.Header.Get("Seawall-Source")
				}
				s.end, s.err = time.Now(), err
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
				time.Sleep(gap)
			}
		}()
	}
	f.t.Cleanup(l.halt)
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// between returns the samples that started in [from, to).
func (l *load) between(from, to time.Time) []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sample
	for _, s := range l.samples {
		if !s.start.Before(from) && s.start.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// quantile of the samples' latencies.
func quantile(ss []sample, q float64) time.Duration {
	if len(ss) == 0 {
		return 0
	}
	d := make([]time.Duration, len(ss))
	for i, s := range ss {
		d[i] = s.end.Sub(s.start)
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// share of the samples answered by member name.
func share(ss []sample, name string) float64 {
	if len(ss) == 0 {
		return 0
	}
	n := 0
	for _, s := range ss {
		if s.endpoint == name {
			n++
		}
	}
	return float64(n) / float64(len(ss))
}

// checkNoneFailed is acceptance row 8: every app request got the
// upstream's answer (here always a 200) and nothing failed in transport.
func checkNoneFailed(t *testing.T, ss []sample) {
	t.Helper()
	bad := 0
	for _, s := range ss {
		if s.err != nil || s.status != http.StatusOK {
			if bad < 5 {
				t.Errorf("request %s: status %d, source %q, err %v", s.path, s.status, s.source, s.err)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d app requests failed", bad, len(ss))
	}
}

// inFlightAt counts the calls member name was answering at the instant,
// and how many of those the app got whole.
func inFlightAt(ss []sample, name string, at time.Time) (n, ok int) {
	for _, s := range ss {
		if s.endpoint == name && s.start.Before(at) && s.end.After(at) {
			n++
			if s.status == http.StatusOK && s.err == nil {
				ok++
			}
		}
	}
	return n, ok
}

// brownout is acceptance rows 1, 2 and 8: member sick is made sick at t0
// and healed at t0+sickFor. It returns the figures for the closing note.
func (f *fleet) brownout(sick string, makeSick fakeapi.Behavior, sickFor time.Duration) {
	t := f.t
	l := f.run(8, 20*time.Millisecond, 3*time.Minute)
	time.Sleep(12 * time.Second) // a whole window of healthy traffic
	m := f.member(sick)
	t0 := time.Now()
	m.fake.Set(makeSick)
	isolated := f.waitFor(sick+" isolated", 15*time.Second, func() bool { return f.states()[sick] != endpoint.Healthy })
	detect := isolated.Sub(t0)
	healAt := t0.Add(sickFor)
	time.Sleep(time.Until(healAt))
	m.fake.Set(healthy(sick))
	restored := f.waitFor(sick+" restored", 60*time.Second, func() bool { return f.states()[sick] == endpoint.Healthy })
	time.Sleep(5 * time.Second)
	l.halt()

	before := l.between(t0.Add(-10*time.Second), t0)
	during := l.between(isolated.Add(time.Second), healAt)
	after := l.between(restored, restored.Add(5*time.Second))
	all := l.between(time.Time{}, time.Now())
	n, ok := inFlightAt(all, sick, isolated)
	t.Logf("%s: detected in %s; restored %s after healing; in flight on it at isolation: %d, answered whole: %d",
		sick, detect.Round(time.Millisecond), restored.Sub(healAt).Round(time.Millisecond), n, ok)
	t.Logf("app p99: before %s, detecting %s, isolated %s, after %s; p95 isolated %s; %s's share while isolated %.2f%% of %d calls; %d requests in all",
		quantile(before, .99).Round(100*time.Microsecond), quantile(l.between(t0, isolated), .99).Round(100*time.Microsecond),
		quantile(during, .99).Round(100*time.Microsecond), quantile(after, .99).Round(100*time.Microsecond),
		quantile(during, .95).Round(100*time.Microsecond), sick, 100*share(during, sick), len(during), len(all))

	if detect > 10*time.Second {
		t.Errorf("%s isolated %s after the brownout began, want within 10s", sick, detect)
	}
	if s := share(during, sick); s > 0.02 {
		t.Errorf("while isolated, %s got %.2f%% of the app's calls, want at most 2%%", sick, 100*s)
	}
	if p95 := quantile(during, .95); p95 >= 50*time.Millisecond {
		t.Errorf("app p95 while %s is isolated = %s, want below 50ms", sick, p95)
	}
	if d := restored.Sub(healAt); d > 30*time.Second {
		t.Errorf("%s restored %s after it healed, want within 30s", sick, d)
	}
	if n != ok {
		t.Errorf("%d calls were in flight on %s at its isolation, %d answered whole", n, sick, ok)
	}
	checkNoneFailed(t, all)
}

// Row 1: endpoint c adds 300 ms to every answer.
func TestEndpointLatencyBrownout(t *testing.T) {
	endpointE2E(t)
	f := newFleet(t, "", "", "a", "b", "c")
	f.brownout("c", slow("c", 300*time.Millisecond), 25*time.Second)
}

// Row 2: endpoint b answers 30% 503s; the failed calls' retries land on
// a and c.
func TestEndpointErrorBrownout(t *testing.T) {
	endpointE2E(t)
	f := newFleet(t, "", "", "a", "b", "c")
	f.brownout("b", failing("b", 0.3), 25*time.Second)

	b := f.member("b").fake.Calls()
	elsewhere := map[string]int{}
	for _, name := range []string{"a", "c"} {
		for _, c := range f.member(name).fake.Calls() {
			elsewhere[c.Path]++
		}
	}
	onB := map[string]int{}
	for _, c := range b {
		onB[c.Path]++
	}
	failed, retriedElsewhere := 0, 0
	for _, c := range b {
		if c.Status != http.StatusServiceUnavailable {
			continue
		}
		failed++
		if elsewhere[c.Path] > 0 {
			retriedElsewhere++
		}
		if onB[c.Path] > 1 {
			t.Errorf("%s failed on b and was retried on b", c.Path)
		}
	}
	t.Logf("b answered %d calls with 503; %d of them were retried on a or c", failed, retriedElsewhere)
	if failed == 0 || retriedElsewhere != failed {
		t.Errorf("%d failed calls on b, %d retried on a or c: want all", failed, retriedElsewhere)
	}
}

// watchStates polls the states until stop, and returns the most members
// seen isolated or probing at once, and whether any was.
func (f *fleet) watchStates(stop <-chan struct{}) func() (most int) {
	done := make(chan int)
	go func() {
		most := 0
		for {
			n := 0
			for _, s := range f.states() {
				if s != endpoint.Healthy {
					n++
				}
			}
			most = max(most, n)
			select {
			case <-stop:
				done <- most
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int { return <-done }
}

// Row 3: all three slow down together, then all three fail 30% together:
// for the whole minute nothing is isolated; the breaker alone decides.
func TestEndpointRegionWideIsNotIsolated(t *testing.T) {
	endpointE2E(t)
	f := newFleet(t, "", "", "a", "b", "c")
	l := f.run(8, 20*time.Millisecond, 2*time.Minute)
	time.Sleep(12 * time.Second)
	stop := make(chan struct{})
	most := f.watchStates(stop)
	for _, m := range f.ms {
		m.fake.Set(slow(m.name, 300*time.Millisecond))
	}
	time.Sleep(30 * time.Second)
	for _, m := range f.ms {
		m.fake.Set(failing(m.name, 0.3))
	}
	time.Sleep(30 * time.Second)
	close(stop)
	l.halt()
	if n := most(); n != 0 {
		t.Errorf("with every endpoint degraded together, up to %d were isolated at once; want none", n)
	}
	if strings.Contains(f.s.logs.String(), "endpoint isolated") {
		t.Error("an isolation was logged")
	}
	t.Logf("%d requests over the minute; no endpoint left the healthy state", len(l.between(time.Time{}, time.Now())))
}

// Row 4: max_isolated 34% of three is one, though two are sick.
func TestEndpointMaxIsolated(t *testing.T) {
	endpointE2E(t)
	f := newFleet(t, "", "    health: {max_isolated: 34%}\n", "a", "b", "c")
	l := f.run(8, 20*time.Millisecond, time.Minute)
	time.Sleep(12 * time.Second)
	stop := make(chan struct{})
	most := f.watchStates(stop)
	f.member("b").fake.Set(slow("b", 300*time.Millisecond))
	f.member("c").fake.Set(slow("c", 300*time.Millisecond))
	f.waitFor("one of b and c isolated", 15*time.Second, func() bool {
		s := f.states()
		return s["b"] != endpoint.Healthy || s["c"] != endpoint.Healthy
	})
	time.Sleep(15 * time.Second)
	close(stop)
	l.halt()
	if n := most(); n != 1 {
		t.Errorf("at most %d endpoints isolated at once, want exactly 1", n)
	}
	if s := f.states(); s["a"] != endpoint.Healthy {
		t.Errorf("the healthy endpoint a is %s", s["a"])
	}
}

// Row 5: both endpoints of zone a go sick: zone a is isolated as a zone,
// and the event says so.
func TestEndpointZoneIsolated(t *testing.T) {
	endpointE2E(t)
	f := newFleet(t, "", "", "a", "a", "b", "c")
	l := f.run(8, 20*time.Millisecond, time.Minute)
	time.Sleep(12 * time.Second)
	f.member("a").fake.Set(failing("a", 0.3))
	f.member("a2").fake.Set(failing("a2", 0.3))
	f.waitFor("zone a isolated", 15*time.Second, func() bool {
		s := f.states()
		return s["a"] != endpoint.Healthy && s["a2"] != endpoint.Healthy
	})
	time.Sleep(2 * time.Second)
	l.halt()
	var zoneEvent map[string]any
	for _, line := range strings.Split(f.s.logs.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "endpoint isolated" && e["zone"] == "a" {
			zoneEvent = e
		}
	}
	if zoneEvent == nil {
		t.Fatalf("no isolation event names zone a; log:\n%s", f.s.logs.String())
	}
	if r, _ := zoneEvent["reason"].(string); !strings.Contains(r, "zone a") {
		t.Errorf("the zone event's reason %q does not say the zone was isolated", r)
	}
	if _, ok := zoneEvent["peers"]; !ok {
		t.Error("the zone event gives no peer figures as evidence")
	}
	t.Logf("zone event: %v", zoneEvent)
	if s := f.states(); s["b"] != endpoint.Healthy || s["c"] != endpoint.Healthy {
		t.Errorf("b and c should stay healthy: %v", s)
	}
	checkNoneFailed(t, l.between(time.Time{}, time.Now()))
}

// Row 7: with Seawall in zone a, zone a takes at least 90% of the calls
// while healthy; isolated, it takes none, its traffic spills to both b
// and c, and no request fails. How the spill divides between b and c is
// the balancer's choice by latency (docs/endpoints.md): with two
// candidates the power of two choices keeps the cheaper, so a zone a
// little faster for the moment takes most of it (12% and 88% in one CI
// run). Each still gets its exploration share, a tenth of the calls
// drawn by weight alone, about 5%.
func TestEndpointLocalZoneAffinity(t *testing.T) {
	endpointE2E(t)
	f := newFleet(t, "zone: a", "", "a", "b", "c")
	l := f.run(8, 20*time.Millisecond, time.Minute)
	time.Sleep(12 * time.Second)
	healthyPart := l.between(time.Now().Add(-10*time.Second), time.Now())
	f.member("a").fake.Set(failing("a", 0.3))
	isolated := f.waitFor("zone a isolated", 15*time.Second, func() bool { return f.states()["a"] != endpoint.Healthy })
	time.Sleep(10 * time.Second)
	l.halt()
	// Isolation lasts 10 s from before it was seen: the window ends
	// before it can end.
	spilled := l.between(isolated.Add(time.Second), isolated.Add(9*time.Second))
	t.Logf("healthy: zone a answered %.1f%% of %d calls; isolated: a %.2f%%, b %.1f%%, c %.1f%% of %d",
		100*share(healthyPart, "a"), len(healthyPart), 100*share(spilled, "a"), 100*share(spilled, "b"), 100*share(spilled, "c"), len(spilled))
	if s := share(healthyPart, "a"); s < 0.9 {
		t.Errorf("the local zone answered %.1f%% of calls while healthy, want at least 90%%", 100*s)
	}
	if a := share(spilled, "a"); a > 0.01 {
		t.Errorf("zone a, isolated, still answered %.2f%% of calls", 100*a)
	}
	if share(spilled, "b") < 0.03 || share(spilled, "c") < 0.03 {
		t.Errorf("with zone a isolated, traffic did not spill to both b and c")
	}
	checkNoneFailed(t, l.between(time.Time{}, time.Now()))
}

// An independent vendor, not our fake: three real nginx servers as the
// endpoints of zones a, b and c. One of them goes away (its host stops:
// connections are refused) and comes back. Its calls are retried on the
// others, so no app request fails; it is isolated within 10s, and
// restored once it serves again.
func TestEndpointRealServerGoesAway(t *testing.T) {
	endpointE2E(t)
	var eps strings.Builder
	servers := map[string]*vendortest.Nginx{}
	for _, z := range []string{"a", "b", "c"} {
		servers[z] = vendortest.StartNginx(t, 100000) // a limit it never reaches
		fmt.Fprintf(&eps, "      - {url: %q, zone: %s}\n", servers[z].URL, z)
	}
	f := &fleet{t: t, s: newStackDoc(t, "admin: {listen: \"off\"}\nupstreams:\n  api:\n    endpoints:\n"+eps.String())}
	state := func(z string) endpoint.State {
		for _, r := range f.s.ups.Status()[0].Endpoints {
			if r.URL == servers[z].URL {
				return r.State
			}
		}
		return ""
	}
	l := f.run(8, 20*time.Millisecond, 2*time.Minute)
	time.Sleep(12 * time.Second)
	t0 := time.Now()
	servers["c"].Stop()
	isolated := f.waitFor("c isolated", 15*time.Second, func() bool { return state("c") != endpoint.Healthy })
	time.Sleep(3 * time.Second)
	back := time.Now()
	servers["c"].Start(t)
	restored := f.waitFor("c restored", 90*time.Second, func() bool { return state("c") == endpoint.Healthy })
	time.Sleep(2 * time.Second)
	l.halt()
	all := l.between(time.Time{}, time.Now())
	t.Logf("nginx c stopped: isolated after %s; started again: restored after %s; %d app requests",
		isolated.Sub(t0).Round(time.Millisecond), restored.Sub(back).Round(time.Millisecond), len(all))
	if d := isolated.Sub(t0); d > 10*time.Second {
		t.Errorf("isolated %s after the server went away, want within 10s", d)
	}
	checkNoneFailed(t, all)
}

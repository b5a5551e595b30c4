package proxy_test

import (
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// exampleStack runs Seawall with examples/seawall.yaml, its upstream
// pointed at a fake, and the fake's answers set to b.
func exampleStack(t *testing.T, b fakeapi.Behavior) *stack {
	t.Helper()
	raw, err := os.ReadFile("../../examples/seawall.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeapi.New(b)
	up := httptest.NewServer(fake)
	t.Cleanup(up.Close)
	doc := strings.NewReplacer("http://127.0.0.1:9999", up.URL, "listen: 127.0.0.1:9090", `listen: "off"`).Replace(string(raw))
	s := newStackDoc(t, doc)
	s.fake, s.up = fake, up
	return s
}

// Vendor fidelity, acceptance 5a: a vendor answering only 429s with
// Retry-After: 1 for 30s never opens the breaker, and its pauses hold:
// no two calls reach it less than a second apart.
func TestOnly429sNeverOpenTheBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("30s; go test without -short runs it")
	}
	// Not parallel: it judges by the vendor's clock how soon an answer's
	// pause binds, and beside the package's parallel tests under -race a
	// call released before the 429 was read could leave 88 ms after it.
	s := exampleStack(t, fakeapi.Behavior{Status: 429, Headers: map[string]string{"Retry-After": "1"}})
	drive(50, 30*time.Second, func(int, time.Time) { s.get("/demo/v1/items/1") })
	if n := s.metric("breaker_transitions_total", "state=open"); n > 0 {
		t.Errorf("the breaker opened %v times on 429s alone", n)
	}
	calls := s.fake.Calls()
	for i := 1; i < len(calls); i++ {
		if d := calls[i].At.Sub(calls[i-1].At); d > wireSlack && d < 990*time.Millisecond {
			t.Errorf("calls %d and %d reached the vendor %s apart inside its 1s pause", i, i+1, d.Round(time.Millisecond))
		}
	}
	if len(calls) < 20 || len(calls) > 2*31 {
		t.Errorf("the vendor saw %d calls in 30s, want about one a second", len(calls))
	}
	t.Logf("%d calls in 30s, breaker %s", len(calls), s.ups.Get("demo").Breaker.State())
}

// Vendor fidelity, acceptance 5b: a vendor failing half its calls with 503
// still serves the app better through the example config than without
// Seawall (50%): at least 60% of the app's requests succeed.
func TestHalfFailingVendorServesTheApp(t *testing.T) {
	if testing.Short() {
		t.Skip("30s; go test without -short runs it")
	}
	t.Parallel()
	s := exampleStack(t, fakeapi.Behavior{ErrorRate: 0.5})
	var ok, all atomic.Int64
	drive(20, 30*time.Second, func(int, time.Time) {
		if s.get("/demo/v1/items/1").status == 200 {
			ok.Add(1)
		}
		all.Add(1)
	})
	share := float64(ok.Load()) / float64(all.Load())
	t.Logf("%d of %d succeeded (%.1f%%); breaker opened %v times", ok.Load(), all.Load(), 100*share, s.metric("breaker_transitions_total", "state=open"))
	if share < 0.6 {
		t.Errorf("%.1f%% of the app's requests succeeded, want at least 60%%", 100*share)
	}
}

// Vendor fidelity, acceptance 5c: a vendor answering 503 to everything
// still opens the breaker within its window; the app is then failed fast,
// and the vendor sees only probes, one after another.
func TestFullOutageFailsFastWithProbesInSequence(t *testing.T) {
	if os.Getenv("SEAWALL_VENDOR_TIMING") != "1" {
		// Beside the race detector and the other packages' tests the host
		// stalls requests for most of a second now and then (a p99 of
		// 837 ms seen in CI), which says nothing of the breaker.
		t.Skip("judges fail-fast latency by the clock: CI's timing step runs it alone (SEAWALL_VENDOR_TIMING=1 go test -run 'TestNginx|TestAdaptiveVendor|TestFullOutage' ./internal/proxy)")
	}
	t.Parallel()
	// Each answer takes 100ms: probes sent together would arrive closer,
	// and a refusal that waited for the vendor would take as long.
	const latency = 100 * time.Millisecond
	s := exampleStack(t, fakeapi.Behavior{Down: true, LatencyMin: fakeapi.Duration(latency), LatencyMax: fakeapi.Duration(latency)})
	start := time.Now()
	var watch breakerWatch
	var mu sync.Mutex
	var fast []time.Duration
	drive(50, 20*time.Second, func(_ int, sent time.Time) {
		t0 := time.Now()
		r := s.get("/demo/v1/items/1")
		if r.header.Get("Seawall-Error") != "circuit-open" {
			return
		}
		d := time.Since(t0)
		mu.Lock()
		fast = append(fast, d)
		mu.Unlock()
		watch.saw(sent)
	})
	openedAt := watch.opened(t, start, 10*time.Second)
	slices.Sort(fast)
	// Failing fast means not waiting for the vendor: the bound is the
	// vendor's answer time, not an absolute speed, which a busy host sets.
	p99 := fast[len(fast)*99/100]
	if p99 >= latency {
		t.Errorf("fail-fast p99 %s, as long as a vendor's answer (%s): the refusals waited for it", p99, latency)
	}
	probes := s.probes(openedAt)
	episodes := int(s.metric("breaker_transitions_total", "state=half_open"))
	if len(probes) > episodes*3 {
		t.Errorf("the vendor saw %d calls while the breaker was open, want at most %d episodes × 3 probes", len(probes), episodes)
	}
	for i := 1; i < len(probes); i++ {
		if d := probes[i].At.Sub(probes[i-1].At); d < latency {
			t.Errorf("probes %d and %d reached the vendor %s apart, less than one answer's %s: want one after another", i, i+1, d, latency)
		}
	}
	t.Logf("opened after %s; %d fail-fast answers, p99 %s; %d probes over %d half-open episodes", openedAt.Sub(start).Round(time.Millisecond), len(fast), p99, len(probes), episodes)
}

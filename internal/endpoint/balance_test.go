package endpoint

import (
	"math/rand/v2"
	"net/url"
	"testing"
	"time"
)

func endpoints(t *testing.T, zones ...string) []*Endpoint {
	t.Helper()
	var out []*Endpoint
	for i, z := range zones {
		u, _ := url.Parse("http://10.0.0." + string(rune('1'+i)))
		out = append(out, NewEndpoint(u, z, 1))
	}
	return out
}

// serve simulates n sequential calls, each endpoint answering in its own
// latency, and counts where they went.
func serve(eps []*Endpoint, latency map[*Endpoint]time.Duration, n int, choose func() *Endpoint) map[*Endpoint]int {
	got := map[*Endpoint]int{}
	now := time.Unix(0, 0)
	for range n {
		e := choose()
		e.Start()
		now = now.Add(10 * time.Millisecond)
		e.Done(now, latency[e], false)
		got[e]++
	}
	return got
}

// The balancer sends little to a slow endpoint, honours weights, keeps
// to the local zone while it is up, spills over when it is not, and
// sends a retry elsewhere.
func TestChoose(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all := func(*Endpoint) bool { return true }

	eps := endpoints(t, "a", "b", "c")
	lat := map[*Endpoint]time.Duration{eps[0]: 20 * time.Millisecond, eps[1]: 20 * time.Millisecond, eps[2]: 320 * time.Millisecond}
	got := serve(eps, lat, 3000, func() *Endpoint { return Choose(eps, all, "", nil, rng) })
	if share := float64(got[eps[2]]) / 3000; share > 0.1 {
		t.Errorf("the slow endpoint got %.0f%% of the calls", 100*share)
	}

	eps = endpoints(t, "a", "b")
	eps[0].Weight = 3
	// Never measured, the two cost alike: the draw, by weight, decides.
	counts := map[*Endpoint]int{}
	for range 4000 {
		counts[PickP2C(eps, rng)]++
	}
	if r := float64(counts[eps[0]]) / float64(counts[eps[1]]); r < 2 {
		t.Errorf("weight 3 against 1 gave a ratio of %.2f", r)
	}

	eps = endpoints(t, "a", "a", "b", "c")
	got = serve(eps, map[*Endpoint]time.Duration{}, 1000, func() *Endpoint { return Choose(eps, all, "a", nil, rng) })
	if near := got[eps[0]] + got[eps[1]]; near < 900 {
		t.Errorf("local zone a got %d of 1000 calls, want at least 90%%", near)
	}
	zoneADown := func(e *Endpoint) bool { return e.Zone != "a" }
	got = serve(eps, map[*Endpoint]time.Duration{}, 1000, func() *Endpoint { return Choose(eps, zoneADown, "a", nil, rng) })
	if got[eps[0]]+got[eps[1]] != 0 || got[eps[2]]+got[eps[3]] != 1000 {
		t.Errorf("with zone a out, calls went %v", got)
	}

	for range 100 {
		if e := Choose(eps, all, "", eps[1], rng); e == eps[1] {
			t.Fatal("a retry went back to the endpoint that failed")
		}
	}
	only := func(e *Endpoint) bool { return e == eps[1] }
	if e := Choose(eps, only, "", eps[1], rng); e != eps[1] {
		t.Error("with only the failed endpoint left, the retry got none")
	}
	if e := Choose(eps, func(*Endpoint) bool { return false }, "", nil, rng); e != nil {
		t.Error("an endpoint was chosen with none available")
	}
}

// The balancer's cost per call, for the closing note.
func BenchmarkChoose(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	var eps []*Endpoint
	for i := range 3 {
		u, _ := url.Parse("http://10.0.0." + string(rune('1'+i)))
		eps = append(eps, NewEndpoint(u, string(rune('a'+i)), 1))
	}
	all := func(*Endpoint) bool { return true }
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e := Choose(eps, all, "a", nil, rng)
		e.Start()
		e.Done(now, time.Millisecond, false)
	}
}

// A fast failure is never a fast success: an endpoint that fails at once
// does not draw the traffic its speed would.
func TestFastFailuresDoNotAttract(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	eps := endpoints(t, "a", "b")
	now := time.Unix(0, 0)
	got := map[*Endpoint]int{}
	for range 2000 {
		e := Choose(eps, func(*Endpoint) bool { return true }, "", nil, rng)
		e.Start()
		now = now.Add(10 * time.Millisecond)
		if e == eps[0] {
			e.Done(now, time.Millisecond, true) // fails in a millisecond
		} else {
			e.Done(now, 30*time.Millisecond, false)
		}
		got[e]++
	}
	if got[eps[0]] > got[eps[1]] {
		t.Errorf("the endpoint failing fast got %d calls, the working one %d", got[eps[0]], got[eps[1]])
	}
}

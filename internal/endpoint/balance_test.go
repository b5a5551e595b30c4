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
func serve(eps []*Endpoint, latency map[*Endpoint]time.Duration, n int, choose func(now time.Time) *Endpoint) map[*Endpoint]int {
	got := map[*Endpoint]int{}
	now := time.Unix(0, 0)
	for range n {
		e := choose(now)
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
	got := serve(eps, lat, 3000, func(now time.Time) *Endpoint { return Choose(eps, all, "", nil, now, rng) })
	if share := float64(got[eps[2]]) / 3000; share > 0.1 || share < Explore/3/2 {
		t.Errorf("the slow endpoint got %.1f%% of the calls, want less than 10%% and no less than about Explore/3", 100*share)
	}

	eps = endpoints(t, "a", "b")
	eps[0].Weight = 3
	// Never measured, the two cost alike: the draw, by weight, decides.
	counts := map[*Endpoint]int{}
	for range 4000 {
		counts[PickP2C(eps, time.Unix(0, 0), rng)]++
	}
	if r := float64(counts[eps[0]]) / float64(counts[eps[1]]); r < 2 {
		t.Errorf("weight 3 against 1 gave a ratio of %.2f", r)
	}

	eps = endpoints(t, "a", "a", "b", "c")
	got = serve(eps, map[*Endpoint]time.Duration{}, 1000, func(now time.Time) *Endpoint { return Choose(eps, all, "a", nil, now, rng) })
	if near := got[eps[0]] + got[eps[1]]; near < 900 {
		t.Errorf("local zone a got %d of 1000 calls, want at least 90%%", near)
	}
	zoneADown := func(e *Endpoint) bool { return e.Zone != "a" }
	got = serve(eps, map[*Endpoint]time.Duration{}, 1000, func(now time.Time) *Endpoint { return Choose(eps, zoneADown, "a", nil, now, rng) })
	if got[eps[0]]+got[eps[1]] != 0 || got[eps[2]]+got[eps[3]] != 1000 {
		t.Errorf("with zone a out, calls went %v", got)
	}

	for range 100 {
		if e := Choose(eps, all, "", eps[1], time.Time{}, rng); e == eps[1] {
			t.Fatal("a retry went back to the endpoint that failed")
		}
	}
	only := func(e *Endpoint) bool { return e == eps[1] }
	if e := Choose(eps, only, "", eps[1], time.Time{}, rng); e != eps[1] {
		t.Error("with only the failed endpoint left, the retry got none")
	}
	if e := Choose(eps, func(*Endpoint) bool { return false }, "", nil, time.Time{}, rng); e != nil {
		t.Error("an endpoint was chosen with none available")
	}
}

// An endpoint the balancer stopped sending to, after one slow answer, is
// worth trying again once its cost has decayed: it is not starved for
// good on an old figure.
func TestCostDecaysOnRead(t *testing.T) {
	eps := endpoints(t, "a", "b")
	t0 := time.Unix(0, 0)
	eps[0].Start()
	eps[0].Done(t0, time.Second, false)
	eps[1].Start()
	eps[1].Done(t0, 10*time.Millisecond, false)
	if eps[0].cost(t0) <= eps[1].cost(t0) {
		t.Fatal("the slow answer did not make the endpoint dearer")
	}
	later := t0.Add(time.Minute) // both idle: the slow figure has decayed toward zero
	if c := eps[0].cost(later); c > 0.01 {
		t.Errorf("a minute idle, the endpoint still costs %.3fs", c)
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
		e := Choose(eps, all, "a", nil, now, rng)
		e.Start()
		e.Done(now, time.Millisecond, false)
	}
}

// BenchmarkPoolPickDone is what an attempt on an upstream of three
// endpoints pays for the balancer and the health bookkeeping: Pick (under
// the pool's lock), Start, and Done (the peak-EWMA, the window's counters
// and sketch). An upstream of one endpoint pays none of it.
func BenchmarkPoolPickDone(b *testing.B) {
	var eps []*Endpoint
	for i := range 3 {
		u, _ := url.Parse("http://10.0.0." + string(rune('1'+i)))
		eps = append(eps, NewEndpoint(u, string(rune('a'+i)), 1))
	}
	p := NewPool("api", "a", eps, defaults(), LogPublisher{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e := p.Pick(now, nil)
		e.Start()
		p.Done(e, now, time.Millisecond, false)
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
		e := Choose(eps, func(*Endpoint) bool { return true }, "", nil, now, rng)
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

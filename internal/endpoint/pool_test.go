package endpoint

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type events struct {
	mu  sync.Mutex
	got []Event
}

func (r *events) Publish(e Event) { r.mu.Lock(); r.got = append(r.got, e); r.mu.Unlock() }

// run drives a pool on a simulated clock: calls every 10 ms (100 a
// second), each endpoint answering in latency(e, now), a tick every
// second of simulated time. It returns the calls each endpoint got in
// [from, to). Calls go round-robin over the healthy endpoints, and
// through Pick to the probing ones: sequential calls would let the
// latency-aware balancer starve a slow endpoint of the calls the
// detector needs to judge it, which concurrent traffic does not.
func run(p *Pool, start time.Time, d time.Duration, latency func(*Endpoint, time.Time) time.Duration, from, to time.Time) map[*Endpoint]int {
	got := map[*Endpoint]int{}
	n := 0
	for now := start; now.Before(start.Add(d)); now = now.Add(10 * time.Millisecond) {
		n++
		e := p.eps[n%len(p.eps)]
		if p.State(e) != Healthy {
			e = p.Pick(now, nil)
		}
		e.Start()
		p.Done(e, now, latency(e, now), false)
		if !now.Before(from) && now.Before(to) {
			got[e]++
		}
		if now.Sub(start)%time.Second == 0 {
			for _, x := range p.eps {
				x.Stats.Rotate()
			}
			p.Tick(now)
		}
	}
	return got
}

// The lifecycle: a brownout endpoint is isolated, gets only probes, and
// is restored once it heals; a region-wide slowdown isolates nothing.
func TestPoolLifecycle(t *testing.T) {
	eps := endpoints(t, "a", "b", "c")
	rec := &events{}
	// run sends an isolated endpoint's third of the round robin through
	// Pick, so a probe share of 3% there is the default 1% of all calls,
	// as an endpoint being probed gets in service.
	cfg := isolating(10*time.Second, 20*time.Second)
	cfg.ProbeShare = 3 * defaults().ProbeShare
	p := NewPool("api", "", eps, cfg, rec)
	t0 := time.Unix(1000, 0)
	heal := t0.Add(60 * time.Second)
	latency := func(e *Endpoint, now time.Time) time.Duration {
		if e == eps[2] && now.Before(heal) {
			return 320 * time.Millisecond
		}
		return 20 * time.Millisecond
	}
	got := run(p, t0, 120*time.Second, latency, t0.Add(20*time.Second), heal)
	var isolatedAt, restoredAt time.Time
	for _, e := range rec.got {
		switch {
		case e.Kind == "isolated" && isolatedAt.IsZero():
			isolatedAt = e.Time
			if e.Endpoint != eps[2].URL.String() || !strings.Contains(e.Reason, "p90 latency") || len(e.Peers) != 2 {
				t.Errorf("isolation event %+v", e)
			}
		case e.Kind == "restored":
			restoredAt = e.Time
		}
	}
	if isolatedAt.IsZero() || isolatedAt.Sub(t0) > 10*time.Second {
		t.Fatalf("the slow endpoint isolated at %v after the start, want within 10 s (events %v)", isolatedAt.Sub(t0), rec.got)
	}
	total := got[eps[0]] + got[eps[1]] + got[eps[2]]
	if share := float64(got[eps[2]]) / float64(total); share > 0.02 {
		t.Errorf("isolated, the slow endpoint still got %.1f%% of the calls", 100*share)
	}
	// Probes taken before the heal can isolate it once more just after:
	// the bound is one longest isolation and two rounds of probes, each
	// round 5 probes at about one a second, 15 s with room for chance.
	if within := cfg.MaxIsolation + 2*15*time.Second; restoredAt.IsZero() || restoredAt.Before(heal) || restoredAt.Sub(heal) > within {
		t.Errorf("restored at %v after healing, want within %v", restoredAt.Sub(heal), within)
	}
	if s := p.State(eps[2]); s != Healthy {
		t.Errorf("at the end: %s", s)
	}

	// Region-wide: everything slows together; nothing is isolated.
	eps = endpoints(t, "a", "b", "c")
	rec = &events{}
	p = NewPool("api", "", eps, defaults(), rec)
	run(p, t0, 60*time.Second, func(*Endpoint, time.Time) time.Duration { return 320 * time.Millisecond }, t0, t0)
	if len(rec.got) != 0 {
		t.Errorf("a region-wide slowdown made events: %v", rec.got)
	}
}

// An error brownout: b fails 30% of its calls, fast; it is isolated with
// its failure rate as the evidence.
func TestPoolErrorBrownout(t *testing.T) {
	eps := endpoints(t, "a", "b", "c")
	rec := &events{}
	p := NewPool("api", "", eps, defaults(), rec)
	t0 := time.Unix(1000, 0)
	n := 0
	for now := t0; now.Before(t0.Add(20 * time.Second)); now = now.Add(10 * time.Millisecond) {
		n++
		e := eps[n%3]
		if p.State(e) != Healthy {
			continue
		}
		e.Start()
		p.Done(e, now, 20*time.Millisecond, e == eps[1] && n%10 < 3)
		if now.Sub(t0)%time.Second == 0 {
			for _, x := range eps {
				x.Stats.Rotate()
			}
			p.Tick(now)
		}
	}
	if len(rec.got) == 0 || rec.got[0].Kind != "isolated" || rec.got[0].Endpoint != eps[1].URL.String() || !strings.Contains(rec.got[0].Reason, "failure rate") {
		t.Fatalf("events %+v; want b isolated for its failure rate", rec.got)
	}
	if at := rec.got[0].Time.Sub(t0); at > 10*time.Second {
		t.Errorf("isolated after %s, want within 10 s", at)
	}
}

// With every endpoint isolated, Pick says so rather than choose one.
func TestPoolAllIsolated(t *testing.T) {
	eps := endpoints(t, "a")
	p := NewPool("api", "", eps, defaults(), &events{})
	p.h[eps[0]].state = Isolated
	if got := p.Pick(time.Now(), nil); got != eps[0] {
		t.Errorf("with its only endpoint isolated, Pick = %v: isolation must not fail a call", got)
	}
	eps = endpoints(t, "a", "b", "c")
	p = NewPool("api", "", eps, defaults(), &events{})
	p.h[eps[0]].state, p.h[eps[1]].state = Isolated, Isolated
	if _, err := p.AddShift(time.Now(), "c", "", time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if got := p.Pick(time.Now(), nil); got == eps[2] {
			t.Fatal("the shifted endpoint was picked while isolated ones could serve")
		}
	}
}

// Manual shifts: traffic leaves a zone at once, comes back when the shift
// is removed or expires; a shift that would leave nothing is refused.
func TestPoolShifts(t *testing.T) {
	eps := endpoints(t, "a", "a", "b", "c")
	rec := &events{}
	p := NewPool("api", "", eps, defaults(), rec)
	now := time.Unix(1000, 0)
	calls := func(at time.Time) map[string]int {
		got := map[string]int{}
		for range 400 {
			e := p.Pick(at, nil)
			e.Start()
			p.Done(e, at, time.Millisecond, false)
			got[e.Zone]++
		}
		return got
	}
	s, err := p.AddShift(now, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := calls(now); got["a"] != 0 {
		t.Errorf("with zone a shifted away, it got %d calls", got["a"])
	}
	if got := calls(now.Add(61 * time.Second)); got["a"] == 0 {
		t.Error("the shift did not expire")
	}
	s, _ = p.AddShift(now.Add(62*time.Second), "a", "", time.Minute)
	if err := p.RemoveShift(now.Add(63*time.Second), s.ID); err != nil {
		t.Fatal(err)
	}
	if got := calls(now.Add(63 * time.Second)); got["a"] == 0 {
		t.Error("removing the shift did not bring traffic back")
	}
	at := now.Add(64 * time.Second)
	for _, z := range []string{"a", "b"} {
		if _, err := p.AddShift(at, z, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.AddShift(at, "c", "", 0); err == nil || !strings.Contains(err.Error(), "no endpoint") {
		t.Errorf("shifting the last zone: %v, want refused", err)
	}
	if _, err := p.AddShift(at, "z", "", 0); err == nil {
		t.Error("a shift of a zone with no endpoint was accepted")
	}
	if _, err := p.AddShift(at, "c", "", 73*time.Hour); err == nil {
		t.Error("a shift over 72 h was accepted")
	}
	if n := len(p.Shifts(at)); n != 2 {
		t.Errorf("%d shifts listed, want 2", n)
	}
	kinds := map[string]int{}
	for _, e := range rec.got {
		kinds[e.Kind]++
	}
	if kinds["shift-added"] != 4 || kinds["shift-removed"] != 1 || kinds["shift-expired"] != 1 {
		t.Errorf("events %v", kinds)
	}

	// A reload's new pool keeps the shifts that still name its endpoints,
	// and numbers new ones after them.
	next := NewPool("api", "", endpoints(t, "a", "c"), defaults(), rec)
	next.Adopt(at, p)
	kept := next.Shifts(at)
	if len(kept) != 1 || kept[0].Zone != "a" {
		t.Fatalf("adopted %+v, want the zone a shift only (zone b is gone)", kept)
	}
	if next.Pick(at, nil).Zone == "a" {
		t.Error("the adopted shift does not hold")
	}
	if err := next.RemoveShift(at, kept[0].ID); err != nil {
		t.Error(err)
	}
	if s, _ := next.AddShift(at, "a", "", 0); s.ID == kept[0].ID {
		t.Errorf("a new shift reused id %s", s.ID)
	}
}

// Shared shifts: the shifts every replica has are put in force, one
// removed elsewhere ends here too, and one this replica made that is not
// yet shared, or that the store lost, stays and is returned, to be shared.
func TestPoolSyncShifts(t *testing.T) {
	eps := endpoints(t, "a", "b", "c")
	p := NewPool("api", "", eps, defaults(), &events{})
	now := time.Unix(1000, 0)
	mine, err := p.AddShiftID(now, "api-me-1", "c", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	theirs := Shift{ID: "api-them-1", Zone: "a", Until: now.Add(time.Minute)}
	elsewhere := Shift{ID: "api-them-2", Zone: "z", Until: now.Add(time.Minute)} // no endpoint here
	ids := func() []string {
		var out []string
		for _, s := range p.Shifts(now) {
			out = append(out, fmt.Sprintf("%s/%v", s.ID, s.Shared))
		}
		slices.Sort(out)
		return out
	}
	if lost := p.SyncShifts(now, []Shift{theirs, elsewhere}, nil); len(lost) != 1 || lost[0].ID != mine.ID {
		t.Errorf("returned %v, want mine, not shared yet, to be shared", lost)
	}
	if got := ids(); !slices.Equal(got, []string{"api-me-1/false", "api-them-1/true"}) {
		t.Fatalf("after the first sync: %v", got)
	}
	if e := p.Pick(now, nil); e.Zone != "b" {
		t.Errorf("with a and c shifted, a call went to %s", e.Zone)
	}
	// Mine is kept now; theirs was removed on its replica.
	p.SyncShifts(now, []Shift{mine}, map[string]bool{theirs.ID: true})
	if got := ids(); !slices.Equal(got, []string{"api-me-1/true"}) {
		t.Fatalf("after the second sync: %v", got)
	}
	// The store restarted empty: mine stays, to be put back.
	if lost := p.SyncShifts(now, nil, nil); len(lost) != 1 || lost[0].ID != mine.ID {
		t.Errorf("the store lost mine: returned %v", lost)
	}
	if got := ids(); !slices.Equal(got, []string{"api-me-1/true"}) {
		t.Fatalf("after the store lost it: %v", got)
	}
	p.SyncShifts(now, nil, map[string]bool{mine.ID: true}) // removed on another replica
	if got := ids(); len(got) != 0 {
		t.Errorf("after it was removed elsewhere: %v, want none", got)
	}
}

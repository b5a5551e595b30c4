package breaker

import "time"

// Several replicas (internal/cluster, docs/distributed.md): each replica's
// breaker judges its own calls as alone, tells the others what its window
// holds, and is held open, released to probe, or closed by what they
// decide together.

// Evidence is what a breaker's window holds now, and whether it is open.
type Evidence struct {
	Calls, Failures, Slow int
	Open                  bool
}

// Evidence reports the window's counts and whether the breaker is open
// (or half-open: not closed).
func (b *Breaker) Evidence() Evidence {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.window.Sums(b.cfg.Now())
	return Evidence{Calls: n[calls], Failures: n[failures], Slow: n[slowCalls], Open: b.state != Closed}
}

// Trips says whether evidence is enough to open a breaker of this config:
// as many calls as min_calls, and a failure or slow-call rate at its
// threshold.
func (b *Breaker) Trips(e Evidence) bool {
	var n [3]int
	n[calls], n[failures], n[slowCalls] = e.Calls, e.Failures, e.Slow
	return b.tripped(n)
}

// Clear says the evidence shows the upstream well: as many calls as
// min_calls, and failure and slow-call rates under half their thresholds.
func (b *Breaker) Clear(e Evidence) bool {
	if e.Calls < b.cfg.MinCalls || e.Calls == 0 {
		return false
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(e.Calls) }
	return pct(e.Failures) < b.cfg.FailureRate/2 && (b.cfg.SlowCall <= 0 || pct(e.Slow) < b.cfg.SlowCallRate/2)
}

// HoldOpen keeps the breaker open until until, whatever its own calls
// say: the replicas opened it together, and until one of them has probed
// the vendor no call leaves. A hold already longer stays.
func (b *Breaker) HoldOpen(until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	if !until.After(now) {
		return
	}
	if b.state == Open && !b.openedAt.Add(b.openFor).Before(until) {
		return
	}
	if b.state != Open {
		b.transition(Open, now, Transition{Shared: true})
	}
	b.openedAt, b.openFor = now, until.Sub(now)
}

// Release ends a hold now: the next call finds the breaker half-open and
// probes, as this replica's turn to probe for every replica.
func (b *Breaker) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open {
		b.openFor = b.cfg.Now().Sub(b.openedAt)
	}
}

// Close closes the breaker: another replica's probes found the vendor well.
func (b *Breaker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != Closed {
		b.openFor = b.cfg.OpenDuration
		b.transition(Closed, b.cfg.Now(), Transition{Shared: true})
	}
}

// OpenDuration is how long the breaker opens for now (it grows while
// probes fail, with max_open_duration).
func (b *Breaker) OpenDuration() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openFor
}

// Package window counts events over a sliding time window.
package window

import "time"

// Buckets is how many slices a window is cut into; events older than the
// window fall out one slice at a time.
const Buckets = 10

// Counters is how many separate counts a window keeps.
const Counters = 3

type bucket struct {
	slot int64 // which slice of time this bucket holds
	n    [Counters]int
}

// Window counts up to Counters kinds of event over a sliding time window.
// It is not safe for concurrent use; callers hold their own lock.
type Window struct {
	width time.Duration // of one bucket
	b     [Buckets]bucket
}

// New returns a window of width d.
func New(d time.Duration) Window {
	return Window{width: max(d/Buckets, time.Millisecond)}
}

// Add adds delta to counter i at time now.
func (w *Window) Add(now time.Time, i, delta int) {
	slot := now.UnixNano() / int64(w.width)
	bk := &w.b[slot%Buckets]
	if bk.slot != slot {
		*bk = bucket{slot: slot}
	}
	bk.n[i] += delta
}

// Sums returns each counter's total over the window ending at now.
func (w *Window) Sums(now time.Time) (sums [Counters]int) {
	slot := now.UnixNano() / int64(w.width)
	for _, bk := range w.b {
		if bk.slot > slot-Buckets && bk.slot <= slot {
			for i, n := range bk.n {
				sums[i] += n
			}
		}
	}
	return sums
}

// Reset forgets every event.
func (w *Window) Reset() { w.b = [Buckets]bucket{} }

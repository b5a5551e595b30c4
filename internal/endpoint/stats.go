package endpoint

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// statBuckets is how many slices an endpoint's window is cut into.
const statBuckets = 6

// sketchAccuracy is the latency sketch's relative accuracy: a p90 read
// from it is within 1% of the true one.
const sketchAccuracy = 0.01

// Stats is one endpoint's window of real calls: counts and a latency
// sketch per slice of time. Record is the hot path (two atomic adds and
// one short lock for the sketch); Rotate, called by a ticker every
// window/statBuckets, starts a new slice off the hot path; Figures reads
// the window for the detector.
type Stats struct {
	id, zone string
	active   atomic.Int32
	b        [statBuckets]statBucket
}

type statBucket struct {
	calls, failures atomic.Int64
	mu              sync.Mutex
	latency         *ddsketch.DDSketch // of successful and failed calls alike
}

// NewStats returns the window of one endpoint.
func NewStats(id, zone string) *Stats {
	s := &Stats{id: id, zone: zone}
	for i := range s.b {
		s.b[i].latency, _ = ddsketch.NewDefaultDDSketch(sketchAccuracy) // fails only for an accuracy outside (0, 1)
	}
	return s
}

// Record counts one call: how long it took (to its answer or failure)
// and whether it failed. A fast failure is a failure, not a fast success.
func (s *Stats) Record(took time.Duration, failed bool) {
	b := &s.b[s.active.Load()]
	b.calls.Add(1)
	if failed {
		b.failures.Add(1)
	}
	b.mu.Lock()
	_ = b.latency.Add(max(took.Seconds(), 0)) // a negative value is the only error
	b.mu.Unlock()
}

// Rotate starts a new slice, dropping the oldest.
func (s *Stats) Rotate() {
	next := (s.active.Load() + 1) % statBuckets
	b := &s.b[next]
	b.calls.Store(0)
	b.failures.Store(0)
	b.mu.Lock()
	b.latency.Clear()
	b.mu.Unlock()
	s.active.Store(next)
}

// recentSlices is how many of the newest slices make the recent figures
// that guard a region-wide onset: the current one and the one before.
const recentSlices = 2

// Figures sums the window: calls, failures and the p90 latency.
func (s *Stats) Figures() Figures { return s.Recent(statBuckets) }

// Recent sums the newest n slices (the current one first) as Figures does.
func (s *Stats) Recent(n int) Figures {
	f := Figures{ID: s.id, Zone: s.zone}
	merged, _ := ddsketch.NewDefaultDDSketch(sketchAccuracy)
	active := int(s.active.Load())
	for k := range min(n, statBuckets) {
		b := &s.b[(active-k+statBuckets)%statBuckets]
		f.Calls += int(b.calls.Load())
		f.Failures += int(b.failures.Load())
		b.mu.Lock()
		_ = merged.MergeWith(b.latency) // same mapping: cannot fail
		b.mu.Unlock()
	}
	if !merged.IsEmpty() {
		if p90, err := merged.GetValueAtQuantile(0.9); err == nil {
			f.Latency = time.Duration(p90 * float64(time.Second))
		}
	}
	return f
}

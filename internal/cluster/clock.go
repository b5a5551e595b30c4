package cluster

import (
	"sync"
	"time"
)

// offset maps Redis's clock onto this replica's. Each answer gives one
// sample: the local time it arrived at, less the Redis time the script
// read. A sample is the true offset plus the time the answer took to
// come back and be read, which a busy host stretches; the least sample
// is the truest, so the offset follows a lower sample at once and a
// higher one (clock drift) only slowly.
type offset struct {
	mu   sync.Mutex
	d    time.Duration
	seen bool
}

// local is Redis time rt on this clock, given one answer read at arrived.
func (o *offset) local(rt, arrived time.Time) time.Time {
	sample := arrived.Sub(rt)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case !o.seen || sample < o.d:
		o.d, o.seen = sample, true
	default:
		o.d += (sample - o.d) / 64
	}
	return rt.Add(o.d)
}

// redis is local time lt on Redis's clock, by the offset last known; the
// zero time stays zero.
func (o *offset) redis(lt time.Time) time.Time {
	if lt.IsZero() {
		return lt
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return lt.Add(-o.d)
}

package endpoint

import (
	"math"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint is one address of a third party, with what the balancer and
// the detector know of it.
type Endpoint struct {
	URL    *url.URL
	Zone   string
	Weight int // relative share among equals; at least 1
	Stats  *Stats

	outstanding atomic.Int64
	mu          sync.Mutex
	ewma        float64   // peak-EWMA latency, seconds
	stamp       time.Time // of the last update
}

// NewEndpoint returns an endpoint of weight w (0 means 1).
func NewEndpoint(u *url.URL, zone string, w int) *Endpoint {
	return &Endpoint{URL: u, Zone: zone, Weight: max(w, 1), Stats: NewStats(u.Redacted(), zone)}
}

// decay is the peak-EWMA's time constant (Finagle's default).
const decay = 10 * time.Second

// Start marks a call sent to the endpoint; Done must follow.
func (e *Endpoint) Start() { e.outstanding.Add(1) }

// failurePenalty is the latency a failed call counts as in the balancer's
// cost, however fast it failed: a fast failure is never a fast success.
const failurePenalty = time.Second

// Done records a call's end: its window, and its peak-EWMA latency (a
// slower answer counts at once, a faster one decays in).
func (e *Endpoint) Done(now time.Time, took time.Duration, failed bool) {
	e.outstanding.Add(-1)
	e.Stats.Record(took, failed)
	if failed {
		took = max(took, failurePenalty)
	}
	rtt := took.Seconds()
	e.mu.Lock()
	defer e.mu.Unlock()
	if rtt > e.ewma {
		e.ewma = rtt
	} else {
		w := math.Exp(-float64(now.Sub(e.stamp)) / float64(decay))
		e.ewma = e.ewma*w + rtt*(1-w)
	}
	e.stamp = now
}

// cost is the expected wait on the endpoint at now: its peak-EWMA
// latency, decayed since its last call as if calls of no latency had
// come in (Finagle's decay on read, so that an endpoint the balancer
// stopped sending to is tried again), times the calls already waiting on
// it, over its weight. An endpoint never measured costs nothing.
func (e *Endpoint) cost(now time.Time) float64 {
	e.mu.Lock()
	ewma, stamp := e.ewma, e.stamp
	e.mu.Unlock()
	if idle := now.Sub(stamp); idle > 0 && ewma > 0 {
		ewma *= math.Exp(-float64(idle) / float64(decay))
	}
	return ewma * float64(e.outstanding.Load()+1) / float64(e.Weight)
}

// Explore is the share of calls drawn by weight alone among all the
// available endpoints, whatever their latency or zone: it keeps every
// available endpoint measured, so that the detector can judge a slow one
// and notice when it heals rather than the balancer starving it unseen,
// and so that other zones are known healthy before traffic spills onto
// them. Each endpoint gets at least about Explore/n of the calls until
// it is isolated; the local zone keeps at least 1-Explore of them.
const Explore = 0.1

// PickP2C chooses among the candidates by the power of two choices: two
// drawn at random in proportion to their weights, the cheaper kept.
func PickP2C(cands []*Endpoint, now time.Time, rng *rand.Rand) *Endpoint {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	a := drawWeighted(cands, rng, -1)
	b := drawWeighted(cands, rng, a)
	if cands[b].cost(now) < cands[a].cost(now) {
		return cands[b]
	}
	return cands[a]
}

// drawWeighted draws an index in proportion to weight, other than skip.
func drawWeighted(cands []*Endpoint, rng *rand.Rand, skip int) int {
	total := 0
	for i, c := range cands {
		if i != skip {
			total += c.Weight
		}
	}
	n := rng.IntN(total)
	for i, c := range cands {
		if i == skip {
			continue
		}
		if n < c.Weight {
			return i
		}
		n -= c.Weight
	}
	return len(cands) - 1 // unreachable
}

// Choose picks an endpoint among those available: in the local zone
// while at least half of its endpoints are available, else in any zone,
// by PickP2C, but an Explore share by weight alone among all; never
// avoid (the endpoint a failed attempt used) when another is available.
func Choose(all []*Endpoint, available func(*Endpoint) bool, local string, avoid *Endpoint, now time.Time, rng *rand.Rand) *Endpoint {
	var usable, near []*Endpoint
	inZone, upInZone := 0, 0
	for _, e := range all {
		if local != "" && e.Zone == local {
			inZone++
		}
		if !available(e) {
			continue
		}
		if local != "" && e.Zone == local {
			upInZone++
		}
		if e == avoid {
			continue
		}
		usable = append(usable, e)
		if local != "" && e.Zone == local {
			near = append(near, e)
		}
	}
	switch {
	case len(usable) > 1 && rng.Float64() < Explore:
		return usable[drawWeighted(usable, rng, -1)]
	case len(near) > 0 && 2*upInZone >= inZone:
		return PickP2C(near, now, rng)
	case len(usable) > 0:
		return PickP2C(usable, now, rng)
	case avoid != nil && available(avoid):
		return avoid // the only one left
	}
	return nil
}

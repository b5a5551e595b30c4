package ratelimit

import (
	"math"
	"time"
)

// The adaptive rate's tuning, chosen by TestAdaptiveAgainstLeakyBucket and
// checked against nginx's limit_req (docs/ratelimit.md).
const (
	// adaptiveBeta is the multiplicative decrease on a 429. Each further
	// 429 without a success between them decreases once more by the same
	// factor, so that a rate far too high is cut fast.
	adaptiveBeta = 0.85
	// adaptiveMaxCuts bounds the compounding of back-to-back decreases.
	adaptiveMaxCuts = 4
	// adaptiveTarget is where the rate heads back to after a decrease, as
	// a share of the rate that drew the 429; past it the rate only probes.
	adaptiveTarget = 0.95
	// adaptiveApproach is the share of the gap to the last rate that drew a
	// 429 recovered with each call that succeeds.
	adaptiveApproach = 0.03
	// adaptiveProbe is the additive increase per successful call, as a
	// share of that rate; past it, the increase grows by itself again every
	// adaptiveProbeCalls calls without a 429, so that a vendor that raised
	// its limit is found.
	adaptiveProbe      = 0.0002
	adaptiveProbeCalls = 200
	// adaptiveMinRate is the floor, in calls a second: a vendor answering
	// only 429s is still asked now and then.
	adaptiveMinRate = 0.2
)

// aimd learns an upstream's real rate from its 429s: additive increase,
// multiplicative decrease, with the rate of the last 429 as a memory.
// It is not safe for concurrent use; Local holds its lock.
type aimd struct {
	ceiling float64   // the configured rate, or +Inf
	rate    float64   // the rate now; +Inf until the first 429 when unconfigured
	bad     float64   // the rate in force at the last 429; 0 before any
	cutAt   time.Time // the last decrease: 429s for calls sent before it are old news
	cuts    int       // decreases since the last success
	above   int       // successful calls since the rate passed bad
}

func newAIMD(ceiling float64) aimd {
	if ceiling <= 0 {
		ceiling = math.Inf(1)
	}
	return aimd{ceiling: ceiling, rate: ceiling}
}

// throttled records a 429 for a call sent at sent; sendRate estimates the
// rate calls were leaving at, for a limiter that had no rate yet. It
// reports whether the rate changed.
func (a *aimd) throttled(now, sent time.Time, sendRate func() float64) bool {
	if !sent.After(a.cutAt) {
		return false // sent at the old rate, already answered for
	}
	from := a.rate
	if math.IsInf(from, 1) {
		from = sendRate()
	}
	a.cuts = min(a.cuts+1, adaptiveMaxCuts)
	a.bad = from
	a.rate = max(adaptiveMinRate, min(a.ceiling, from*math.Pow(adaptiveBeta, float64(a.cuts))))
	a.cutAt, a.above = now, 0
	return true
}

// seed gives an unconfigured limiter a rate without a 429: the rate calls
// were leaving at, so that calls held by a pause leave at it afterwards
// rather than all at once.
func (a *aimd) seed(now time.Time, sendRate func() float64) {
	if math.IsInf(a.rate, 1) {
		a.rate, a.bad = sendRate(), 0
	}
}

// succeeded records a call answered without a 429. The rate grows per
// such call, and only for calls the pace held back: while the app asks
// for less than the rate allows, the answers say nothing of the vendor's
// limit (RFC 7661's reasoning for TCP).
func (a *aimd) succeeded(held bool) {
	a.cuts = 0
	if !held || math.IsInf(a.rate, 1) || a.rate >= a.ceiling {
		return
	}
	ref := a.bad
	if ref == 0 {
		ref = a.rate
	}
	var gain float64
	if target := adaptiveTarget * ref; a.rate < target {
		gain = adaptiveApproach*(target-a.rate) + adaptiveProbe*ref
	} else {
		a.above++
		gain = adaptiveProbe * ref * (1 + float64(a.above)/adaptiveProbeCalls)
	}
	a.rate = min(a.ceiling, a.rate+gain)
}

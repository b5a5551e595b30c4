package ratelimit

import (
	"math"
	"time"
)

// Signal is what one replica learned of the vendor and shares with the
// others (Global): a learned rate, or the vendor's quota as it stated it.
type Signal struct {
	// Rate, when above 0, is the adaptive rate now, in calls a second;
	// Bad the rate believed too high (0: none), for BadFor from now.
	Rate, Bad float64
	BadFor    time.Duration
	// Reset, when above 0, is a stated quota: Remaining calls until it
	// resets, Reset from now.
	Remaining int64
	Reset     time.Duration
}

// learned is the adaptive rate's belief, to share: ok is false while the
// rate is not known (unconfigured, before the first 429).
func (l *Local) learned() (s Signal, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := &l.rate
	if !l.cfg.Adaptive || math.IsInf(a.rate, 1) {
		return Signal{}, false
	}
	s.Rate = a.rate
	if left := a.badFor - now.Sub(a.badAt); a.bad > 0 && left > 0 {
		s.Bad, s.BadFor = a.bad, left
	}
	return s, true
}

// adopt takes the rate another replica learned, and its belief of the
// rate that is too high. A cut starts a new round here too, and the 429s
// of calls sent before it are that cut's, not another: the replicas that
// all see one burst of 429s cut once, together.
func (l *Local) adopt(s Signal) {
	now := l.now()
	l.mu.Lock()
	defer l.unlock()
	a := &l.rate
	if !l.cfg.Adaptive || s.Rate <= 0 || math.IsInf(s.Rate, 0) || math.IsNaN(s.Rate) {
		return
	}
	from, iv := a.rate, l.interval()
	next := max(adaptiveMinRate, min(a.ceiling, s.Rate))
	if next == from {
		return
	}
	if next < from {
		a.cutAt = now
	}
	a.rate = next
	if s.Bad > 0 && s.BadFor > 0 {
		a.bad, a.badAt, a.badFor = s.Bad, now, s.BadFor
	}
	a.round, a.oks, a.refused, a.pressed, a.asked = now, 0, false, false, 0
	l.events = append(l.events, Event{Kind: "rate", Reason: ReasonShared, From: finite(from), To: next})
	l.reinterval(iv, now)
}

// ReasonShared is a rate change another replica learned.
const ReasonShared = "shared"

// statedQuota is the vendor's quota as last stated here, if known.
func (l *Local) statedQuota() (s Signal, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireQuota(now)
	if !l.quota.known {
		return Signal{}, false
	}
	return Signal{Remaining: max(0, l.quota.remaining), Reset: l.quota.reset.Sub(now)}, true
}

// adoptQuota takes the vendor's quota as another replica read it: a newer
// window, or fewer calls left in this one.
func (l *Local) adoptQuota(s Signal) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.Reset > 0 && s.Remaining >= 0 {
		l.noteQuota(s.Remaining, now.Add(s.Reset))
	}
}

package ratelimit

import (
	"context"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// maxKeys bounds the per-tenant buckets kept; past it, idle buckets are
// dropped, which loses nothing since a new bucket starts full.
const maxKeys = 10000

// graceShare: a call may always wait 1/graceShare of an interval.
const graceShare = 4

// recentReleases is how many release times are kept to estimate the rate
// calls leave at, for an unconfigured limiter's first adaptation.
const recentReleases = 64

// Config sets up a Local limiter.
type Config struct {
	// Rate is the sustained rate in calls a second; 0 means none.
	Rate float64
	// Burst is how many calls may leave back to back. At least 1.
	Burst int
	// Headroom is the share (0 to <1) the pace is kept under Rate, so that
	// jitter between a call's release and its arrival at the vendor never
	// makes two calls arrive closer than the vendor's interval.
	Headroom float64
	// Adaptive lowers the rate on the vendor's 429s and raises it while
	// calls succeed, never above Rate.
	Adaptive bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnEvent, if set, hears of pauses and rate changes. It is called
	// without the limiter's lock held.
	OnEvent func(Event)
}

// Event is a change worth telling an operator of.
type Event struct {
	// Kind is "paused" or "rate".
	Kind string
	// Reason is the pause's reason, or for a rate change "throttled"
	// (a 429) or "seeded" (a pause gave an unlimited upstream a rate).
	Reason string
	// Pause is the pause's length.
	Pause time.Duration
	// From and To are the rate before and after, in calls a second.
	From, To float64
	// Status is the upstream status that caused it, if one did.
	Status int
}

// Local paces calls in process: a GCRA per key evaluated when each call is
// released, a FIFO of waiting callers per key, and one pause, quota and
// adaptive rate for the upstream as a whole. It implements Limiter.
type Local struct {
	cfg   Config
	burst int
	now   func() time.Time

	mu      sync.Mutex
	keys    map[string]*bucket        // guarded by mu
	pauseAt time.Time                 // guarded by mu; nothing leaves before it
	reason  string                    // guarded by mu; why pauseAt was set
	quota   quotaState                // guarded by mu
	rate    adaptiveRate              // guarded by mu
	seq     int64                     // guarded by mu; calls released
	recent  [recentReleases]time.Time // guarded by mu; ring of release times
	waiting int                       // guarded by mu; interactive callers queued
	rtts    [32]time.Duration         // guarded by mu; the latest answers' times from the write
	rttN    uint64                    // guarded by mu; answers timed
	usual   time.Duration             // guarded by mu; the third quartile of rtts, refreshed every 8th answer
	events  []Event                   // guarded by mu; told after unlock
}

// bucket is one key's pacing state.
type bucket struct {
	tat   time.Time // GCRA theoretical arrival time
	queue []*waiter // interactive callers, first come first served
}

type waiter struct{ wake chan struct{} }

// quotaState is the vendor's quota as its headers last stated it.
type quotaState struct {
	known     bool
	remaining int64     // less the calls released since it was stated
	reset     time.Time // when the vendor restores it
}

// NewLocal returns a limiter for cfg.
func NewLocal(cfg Config) *Local {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Local{cfg: cfg, burst: max(cfg.Burst, 1), now: cfg.Now, keys: map[string]*bucket{}}
	l.rate = newAdaptiveRate(cfg.Rate * (1 - cfg.Headroom))
	return l
}

// interval is the spacing of calls now; 0 when unlimited. Caller holds mu.
func (l *Local) interval() time.Duration {
	r := l.rate.rate
	if math.IsInf(r, 1) || r <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / r)
}

// bucket returns key's bucket. Caller holds mu.
func (l *Local) bucket(key string, now time.Time) *bucket {
	b, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= maxKeys {
			l.dropIdle(now)
		}
		b = &bucket{}
		l.keys[key] = b
	}
	return b
}

// dropIdle removes buckets with nobody waiting that have refilled. Caller
// holds mu.
func (l *Local) dropIdle(now time.Time) {
	for k, b := range l.keys {
		if len(b.queue) == 0 && !b.tat.After(now) {
			delete(l.keys, k)
		}
	}
}

// earliest is when the next call for b may leave, and whether a pause is
// what holds it. Caller holds mu.
func (l *Local) earliest(b *bucket, now time.Time) (time.Time, bool) {
	l.expireQuota(now)
	at := time.Time{}
	if iv := l.interval(); iv > 0 {
		at = l.tat(b, iv).Add(-time.Duration(l.burst-1) * iv)
	}
	if l.pauseAt.After(now) && !l.pauseAt.Before(at) {
		return l.pauseAt, true
	}
	return at, false
}

// tat is b's theoretical arrival time at interval iv, counting the last
// pause: after it the bucket starts empty, so that the calls it held leave
// one at its end and then one an interval, never all at once. Caller
// holds mu.
func (l *Local) tat(b *bucket, iv time.Duration) time.Time {
	if p := l.pauseAt.Add(time.Duration(l.burst-1) * iv); p.After(b.tat) {
		return p
	}
	return b.tat
}

// take releases one call for b at now. Caller holds mu.
func (l *Local) take(b *bucket, now time.Time, held bool) Slot {
	if iv := l.interval(); iv > 0 {
		tat := l.tat(b, iv)
		if now.After(tat) {
			tat = now
		}
		b.tat = tat.Add(iv)
	}
	l.seq++
	l.recent[l.seq%recentReleases] = now
	if l.quota.known {
		l.quota.remaining--
		if l.quota.remaining <= 0 {
			l.pauseLocked(l.quota.reset, PauseQuota, 0, now)
		}
	}
	if held {
		l.rate.pressed = true
	}
	return Slot{At: now, seq: l.seq, held: held, iv: l.interval()}
}

// Sent implements Limiter: the bucket's next slot is at least an
// interval after the moment the call went out.
func (l *Local) Sent(key string, s Slot, at time.Time) {
	if s.iv == 0 || !at.After(s.At) {
		return
	}
	l.mu.Lock()
	l.spaceFrom(key, at)
	l.mu.Unlock()
}

// spaceFrom puts key's next slot at least an interval after at, a moment
// the vendor may have counted the last call at. Caller holds mu.
func (l *Local) spaceFrom(key string, at time.Time) {
	if b, ok := l.keys[key]; ok {
		if next := at.Add(l.interval()); next.After(b.tat) {
			b.tat = next
		}
	}
}

// expireQuota forgets a stated quota once its window has reset. Caller
// holds mu.
func (l *Local) expireQuota(now time.Time) {
	if l.quota.known && !now.Before(l.quota.reset) {
		l.quota = quotaState{}
	}
}

// Wait implements Limiter.
func (l *Local) Wait(ctx context.Context, key string, maxWait time.Duration) (Slot, error) {
	l.mu.Lock()
	start := l.now() // read under mu: releases are stamped in the order they happen
	// A call whose slot is a fraction of an interval away waits for it
	// even when it may not wait (reject mode): arrivals are discrete, and
	// refusing calls that come just early would leave slots unused.
	limit := budget(ctx, start, max(maxWait, l.interval()/graceShare))
	l.rate.asked++
	b := l.bucket(key, start)
	at, paused := l.earliest(b, start)
	if len(b.queue) == 0 && !at.After(start) {
		s := l.take(b, start, false)
		l.unlock()
		return s, nil
	}
	// Everyone queued leaves first, one interval apart.
	eta := at
	if eta.Before(start) {
		eta = start
	}
	eta = eta.Add(time.Duration(len(b.queue)) * l.interval())
	if eta.Sub(start) > limit {
		err := l.exceeded(eta.Sub(start), paused)
		l.unlock()
		return Slot{}, err
	}
	w := &waiter{wake: make(chan struct{}, 1)}
	b.queue = append(b.queue, w)
	l.waiting++
	deadline := start.Add(limit)
	for {
		now := l.now()
		until := deadline
		if b.queue[0] == w {
			at, paused := l.earliest(b, now)
			if !at.After(now) {
				s := l.take(b, now, true)
				l.leave(b, w)
				l.unlock()
				return s, nil
			}
			if at.After(deadline) {
				err := l.exceeded(at.Sub(now), paused)
				l.leave(b, w)
				l.unlock()
				return Slot{}, err
			}
			until = at
		} else if !now.Before(deadline) {
			err := l.exceeded(l.interval(), false)
			l.leave(b, w)
			l.unlock()
			return Slot{}, err
		}
		l.mu.Unlock()
		if err := sleepOrWake(ctx, until.Sub(now), w.wake); err != nil {
			l.mu.Lock()
			l.leave(b, w)
			l.unlock()
			return Slot{}, err
		}
		l.mu.Lock()
	}
}

// leave takes w out of b's queue and wakes the new head. Caller holds mu.
func (l *Local) leave(b *bucket, w *waiter) {
	for i, q := range b.queue {
		if q == w {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			l.waiting--
			break
		}
	}
	if len(b.queue) > 0 {
		select {
		case b.queue[0].wake <- struct{}{}:
		default:
		}
	}
}

// exceeded is the error for a caller that cannot get a slot within d.
// Caller holds mu.
func (l *Local) exceeded(d time.Duration, paused bool) error {
	if paused {
		return &ExceededError{RetryAfter: d, Paused: true, Reason: l.reason}
	}
	if l.cfg.Adaptive { // the pace refused a call: demand is above the rate
		l.rate.pressed = true
		l.adapt(l.now())
	}
	return &ExceededError{RetryAfter: d}
}

// sleepOrWake waits d, a wake-up, or ctx's end (returning its error).
func sleepOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitBackground implements Limiter. A background caller never queues
// ahead of interactive ones: it looks once per slot interval (or at the
// end of a pause) for a slot that is free now with nobody waiting.
func (l *Local) WaitBackground(ctx context.Context, key string, maxWait time.Duration) (Slot, error) {
	start := l.now()
	limit := budget(ctx, start, maxWait)
	deadline := start.Add(limit)
	for held := false; ; held = true {
		now := l.now()
		l.mu.Lock()
		if !held {
			l.rate.asked++ // once a call, under the lock the first look takes
		}
		b := l.bucket(key, now)
		at, paused := l.earliest(b, now)
		if l.waiting == 0 && !at.After(now) {
			s := l.take(b, now, held)
			l.unlock()
			return s, nil
		}
		next := max(at.Sub(now), l.interval(), time.Millisecond)
		if !paused && l.waiting > 0 {
			next = max(l.interval(), 5*time.Millisecond)
		}
		if now.Add(next).After(deadline) {
			err := l.exceeded(next, paused)
			l.unlock()
			return Slot{}, err
		}
		l.unlock()
		if err := sleepOrWake(ctx, next, nil); err != nil {
			return Slot{}, err
		}
	}
}

// Observe implements Limiter.
func (l *Local) Observe(key string, s Slot, a Answer) {
	status, h := a.Status, a.Header
	if status == 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.unlock()
	l.answered(key, s, a.Sent, now)
	q, quotaStated := ParseQuota(h, now)
	if quotaStated {
		l.stated(q, s, now)
	}
	// The adaptive rate judges the answer before its own pause seeds a
	// rate: a 429's pause is the 429's, not a pause without one.
	d, pauses := PauseFor(status, h, now)
	pauses = pauses && d > 0
	l.adaptTo(s, a, now, quotaStated && q.Remaining <= 0, pauses)
	if pauses {
		l.pauseLocked(now.Add(d), PauseRetryAfter, status, now)
	}
}

// adaptTo gives the adaptive rate the answer to the call released at s;
// spent says the answer states the vendor's quota is spent, pauses that
// it pauses every call. Caller holds mu.
func (l *Local) adaptTo(s Slot, a Answer, now time.Time, spent, pauses bool) {
	if !l.cfg.Adaptive {
		return
	}
	status := a.Status
	switch {
	case status == http.StatusTooManyRequests && spent:
		// The vendor says its quota is spent until a reset: the pause
		// waits that out, and the pace is not to blame.
		l.rate.refused, l.rate.lastOK = true, false
	case status == http.StatusTooManyRequests:
		from, iv := l.rate.rate, l.interval()
		if l.rate.throttled(now, s.At, l.paceOf(s, now), s.held, pauses) {
			l.events = append(l.events, Event{Kind: "rate", Reason: "throttled", From: finite(from), To: l.rate.rate, Status: status})
			l.reinterval(iv, now)
		}
		return
	case status < 500:
		l.rate.succeeded()
	}
	l.adapt(now)
}

// paceOf is the rate the call released at s left at: the pace's,
// when the pace held it back; otherwise the rate calls were leaving at,
// which the app set. Caller holds mu.
func (l *Local) paceOf(s Slot, now time.Time) float64 {
	paced := math.Inf(1)
	if s.iv > 0 {
		paced = 1 / s.iv.Seconds()
	}
	if s.held {
		return paced
	}
	return min(paced, l.sendRate(now))
}

// adapt closes the adaptive rate's round when it is due, and tells of a
// change. Caller holds mu.
func (l *Local) adapt(now time.Time) {
	from, iv := l.rate.rate, l.interval()
	if l.rate.step(now) {
		l.events = append(l.events, Event{Kind: "rate", Reason: "raised", From: finite(from), To: l.rate.rate})
		l.reinterval(iv, now)
	}
}

// reinterval moves every bucket's next slot from interval old to the one
// in force: a rate raised from a slow one takes effect now rather than
// after the slow interval, and after a cut the next call leaves a new
// interval after the last, not an old one. From no rate (old 0) there is
// no slot to move: the first call after the cut leaves at once, and
// spaces the next. Caller holds mu.
func (l *Local) reinterval(old time.Duration, now time.Time) {
	if old <= 0 {
		return
	}
	iv := l.interval()
	for _, b := range l.keys {
		if b.tat.After(now.Add(-old)) {
			b.tat = b.tat.Add(iv - old)
		}
	}
}

// answered spaces key's next call from the latest moment the vendor can
// have counted this one. An answer slower than three in four of the last
// 32 was held somewhere, and if on the way in, the vendor counted the
// call late and would take the next one, spaced from the write alone, as
// early. So when the answer comes before the next slot, that slot moves
// by the excess over that third quartile. Most ordinary variation of the
// vendor's own time stays under it and costs nothing; a stall of the
// network or the vendor's machine does not. Caller holds mu.
func (l *Local) answered(key string, s Slot, sent, now time.Time) {
	if s.iv == 0 || sent.IsZero() || now.Before(sent) {
		return
	}
	rtt := now.Sub(sent)
	usual := l.usual
	l.rtts[l.rttN%uint64(len(l.rtts))] = rtt
	l.rttN++
	if l.rttN%8 == 1 { // the quartile moves slowly: sort every eighth answer
		recent, n := l.rtts, min(l.rttN, uint64(len(l.rtts)))
		sorted := recent[:n]
		slices.Sort(sorted)
		l.usual = sorted[n*3/4]
	}
	if usual > 0 && rtt > usual {
		l.spaceFrom(key, sent.Add(rtt-usual))
	}
}

// stated takes in a quota the vendor stated in its answer to the call
// released at s: the calls released after s will spend from it too.
// Caller holds mu.
func (l *Local) stated(q Quota, s Slot, now time.Time) {
	left := q.Remaining - (l.seq - s.seq) // the calls released since s spend from it too
	l.noteQuota(left, now.Add(q.Reset))
	if l.quota.remaining <= 0 && q.Reset > 0 {
		l.pauseLocked(l.quota.reset, PauseQuota, 0, now)
	}
}

// noteQuota takes a stated quota: a newer window, or fewer calls left in
// this one. Caller holds mu.
func (l *Local) noteQuota(left int64, reset time.Time) {
	switch {
	case !l.quota.known, reset.After(l.quota.reset.Add(500 * time.Millisecond)):
		l.quota = quotaState{known: true, remaining: left, reset: reset}
	default:
		l.quota.remaining = min(l.quota.remaining, left)
	}
}

// sendRate estimates the rate calls left at lately, from the release
// times kept, in calls a second; at least the adaptive floor. Caller
// holds mu.
func (l *Local) sendRate(now time.Time) float64 {
	n := min(l.seq, recentReleases)
	if n < 2 {
		return adaptiveMinRate
	}
	newest := l.recent[l.seq%recentReleases]
	oldest := newest
	count := 0
	for i := int64(0); i < n; i++ {
		t := l.recent[(l.seq-i)%recentReleases]
		if now.Sub(t) > time.Second {
			break
		}
		oldest, count = t, count+1
	}
	span := newest.Sub(oldest).Seconds()
	if count < 2 || span <= 0 {
		return adaptiveMinRate
	}
	return max(adaptiveMinRate, float64(count-1)/span)
}

// Pause implements Limiter.
func (l *Local) Pause(until time.Time, reason string) {
	l.mu.Lock()
	l.pauseLocked(until, reason, 0, l.now())
	l.unlock()
}

// pauseLocked extends the pause to until. An unconfigured adaptive limiter
// takes twice the rate calls left at, so that the calls it holds do not
// all leave together when it ends, yet drain. Caller holds mu.
func (l *Local) pauseLocked(until time.Time, reason string, status int, now time.Time) {
	if !until.After(l.pauseAt) || !until.After(now) {
		return
	}
	if !l.pauseAt.After(now) {
		l.events = append(l.events, Event{Kind: "paused", Reason: reason, Pause: until.Sub(now), Status: status})
	}
	l.pauseAt, l.reason = until, reason
	if l.cfg.Adaptive && math.IsInf(l.rate.rate, 1) {
		l.rate.seed(l.sendRate(now))
		l.events = append(l.events, Event{Kind: "rate", Reason: "seeded", To: l.rate.rate})
	}
}

// unlock releases mu and tells the events gathered under it.
func (l *Local) unlock() {
	ev := l.events
	l.events = nil
	l.mu.Unlock()
	if l.cfg.OnEvent != nil {
		for _, e := range ev {
			l.cfg.OnEvent(e)
		}
	}
}

// Status implements Limiter.
func (l *Local) Status() Status {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireQuota(now)
	s := Status{Configured: l.cfg.Rate, Adaptive: l.cfg.Adaptive, QuotaRemaining: -1, Scope: "local"}
	if iv := l.interval(); iv > 0 {
		s.Effective = float64(time.Second) / float64(iv)
	}
	if l.pauseAt.After(now) {
		s.PausedFor, s.PauseReason = l.pauseAt.Sub(now), l.reason
	}
	if l.quota.known {
		s.QuotaRemaining = max(0, l.quota.remaining)
	}
	return s
}

// Remaining implements Limiter.
func (l *Local) Remaining(key string) int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	iv := l.interval()
	if iv == 0 {
		if l.quota.known {
			return int(max(0, min(l.quota.remaining, math.MaxInt32)))
		}
		return math.MaxInt32
	}
	b := l.bucket(key, now)
	at, _ := l.earliest(b, now)
	if at.After(now) {
		return 0
	}
	return min(l.burst, 1+int(now.Sub(at)/iv))
}

// Policy implements Limiter.
func (l *Local) Policy() Policy {
	if l.cfg.Rate <= 0 {
		return Policy{}
	}
	return Policy{Quota: int(math.Ceil(l.cfg.Rate)) + l.burst - 1, Window: time.Second}
}

func finite(r float64) float64 {
	if math.IsInf(r, 1) {
		return 0
	}
	return r
}

// DefaultHeadroom is rate_limit.headroom's default; see docs/ratelimit.md
// for the measurement behind it.
const DefaultHeadroom = 0.05

package ratelimit

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seawall/seawall/internal/clock"
	"golang.org/x/time/rate"
)

// maxKeys bounds the per-tenant buckets kept; past it, full (idle) buckets
// are dropped, which loses nothing since a new bucket starts full.
const maxKeys = 10000

// Local is an in-process token bucket per upstream, or per key.
type Local struct {
	limit rate.Limit // rate.Inf when unlimited
	burst int
	now   func() time.Time

	pausedUntil atomic.Int64 // unix nanoseconds
	queued      atomic.Int64 // interactive callers waiting for a slot

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // guarded by mu
}

// NewLocal returns a limiter of perSecond sustained calls with burst.
// perSecond <= 0 means no limit (pauses still apply).
func NewLocal(perSecond float64, burst int, now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	l := &Local{limit: rate.Inf, burst: max(burst, 1), now: now, buckets: map[string]*rate.Limiter{}}
	if perSecond > 0 {
		l.limit = rate.Limit(perSecond)
	}
	return l
}

func (l *Local) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxKeys {
			l.dropIdle()
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b
}

// dropIdle removes buckets that have refilled. Caller holds mu.
func (l *Local) dropIdle() {
	now := l.now()
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// Wait implements Limiter.
func (l *Local) Wait(ctx context.Context, key string, maxWait time.Duration) error {
	if err := l.waitPause(ctx, maxWait); err != nil {
		return err
	}
	if l.limit == rate.Inf {
		return nil
	}
	now := l.now()
	r := l.bucket(key).ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d > budget(ctx, now, maxWait) {
		r.CancelAt(now)
		return &ExceededError{RetryAfter: d}
	}
	if d <= 0 {
		return nil
	}
	l.queued.Add(1)
	defer l.queued.Add(-1)
	if err := clock.Sleep(ctx, d); err != nil {
		r.Cancel()
		return err
	}
	return nil
}

// WaitBackground implements Limiter. A background caller never reserves a
// future slot (which would push interactive callers back); it checks once
// per slot interval whether a slot is free and nobody interactive waits.
func (l *Local) WaitBackground(ctx context.Context, key string, maxWait time.Duration) error {
	if err := l.waitPause(ctx, maxWait); err != nil {
		return err
	}
	if l.limit == rate.Inf {
		return nil
	}
	b := l.bucket(key)
	interval := time.Duration(float64(time.Second) / float64(l.limit))
	start := l.now()
	limit := budget(ctx, start, maxWait)
	for {
		now := l.now()
		if l.queued.Load() == 0 && b.TokensAt(now) >= 1 && b.AllowN(now, 1) {
			return nil
		}
		if now.Add(interval).Sub(start) > limit {
			return &ExceededError{RetryAfter: interval}
		}
		if err := clock.Sleep(ctx, interval); err != nil {
			return err
		}
	}
}

func (l *Local) waitPause(ctx context.Context, maxWait time.Duration) error {
	until := l.pausedUntil.Load()
	if until == 0 {
		return nil
	}
	now := l.now()
	d := time.Duration(until - now.UnixNano())
	if d <= 0 {
		return nil
	}
	if d > budget(ctx, now, maxWait) {
		return &ExceededError{RetryAfter: d, Paused: true}
	}
	return clock.Sleep(ctx, d)
}

// Pause implements Limiter.
func (l *Local) Pause(until time.Time) {
	n := until.UnixNano()
	for {
		cur := l.pausedUntil.Load()
		if n <= cur || l.pausedUntil.CompareAndSwap(cur, n) {
			return
		}
	}
}

// PausedFor reports how much of a pause remains.
func (l *Local) PausedFor() time.Duration {
	return max(0, time.Duration(l.pausedUntil.Load()-l.now().UnixNano()))
}

// Remaining implements Limiter.
func (l *Local) Remaining(key string) int {
	if l.limit == rate.Inf {
		return math.MaxInt32
	}
	return max(0, int(l.bucket(key).TokensAt(l.now())))
}

// Policy implements Limiter.
func (l *Local) Policy() Policy {
	if l.limit == rate.Inf {
		return Policy{}
	}
	return Policy{Quota: int(math.Ceil(float64(l.limit))) + l.burst, Window: time.Second}
}

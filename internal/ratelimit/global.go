package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Shared is where a Global limiter keeps what every replica obeys: one
// pace per key and one pause for the upstream, on the store's clock.
type Shared interface {
	// Reserve takes key's next slot at interval iv (0: unlimited, only a
	// pause binds) with the given burst, when it comes within maxWait, and
	// says when it is on this replica's clock, and how long from the
	// store's now. When it does not come in time, nothing is taken, wait
	// says when the next one would come, and paused whether a pause holds
	// it. An error means the store did not answer in time.
	Reserve(ctx context.Context, key string, iv time.Duration, burst int, maxWait time.Duration) (at time.Time, wait time.Duration, taken, paused bool, err error)
	// Pause holds every replica's calls for d from now.
	Pause(ctx context.Context, d time.Duration) error
	// PausedUntil is the end of the last pause another replica published,
	// on this replica's clock: a call already given a slot checks it
	// before it leaves.
	PausedUntil() time.Time
	// Replicas is how many replicas were last seen live, at least 1.
	Replicas() int
}

// GlobalConfig sets up a Global limiter.
type GlobalConfig struct {
	Config
	// Closed refuses calls while the store cannot be reached; otherwise
	// each replica paces at its share of the rate.
	Closed bool
	// Retry is how often, while the store is unreachable, one call tries
	// it again. Default 1s.
	Retry time.Duration
}

// Global paces one upstream's calls across every replica: this replica's
// callers queue in a Local at the full rate (interactive calls before job
// deliveries, as on one replica), then each takes the next slot of the
// shared pace, one round trip, and sleeps until it. A pause this replica
// hears from the vendor is shared; one another replica shares holds the
// calls here too. While the store cannot be reached, the calls pace
// locally at the rate divided by the replicas last seen live, or, when
// Closed, are refused. It implements Limiter.
type Global struct {
	*Local
	shared Shared
	cfg    GlobalConfig

	mu       sync.Mutex
	down     bool      // the store did not answer the last try
	retryAt  time.Time // when a call tries the store again
	fallback *Local    // paces at the rate's share while down
	share    int       // the replicas fallback divides the rate by

	pending   time.Duration // a pause this replica heard, not yet shared
	pendingAt time.Time     // when it was heard
}

// sharePending tells the other replicas of the pause this one heard, if
// any: the pause holds every replica's calls from then on.
func (g *Global) sharePending() {
	g.mu.Lock()
	d, at := g.pending, g.pendingAt
	g.pending = 0
	g.mu.Unlock()
	if d <= 0 {
		return
	}
	if left := d - g.now().Sub(at); left > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.shared.Pause(ctx, left) // unreachable: each replica pauses on what it hears itself
		cancel()
	}
}

// Observe implements Limiter: the Local reads the answer, and a pause it
// asks for is shared.
func (g *Global) Observe(key string, s Slot, a Answer) {
	g.Local.Observe(key, s, a)
	g.sharePending()
}

// Pause implements Limiter, for every replica.
func (g *Global) Pause(until time.Time, reason string) {
	g.Local.Pause(until, reason)
	g.sharePending()
}

// NewGlobal returns a limiter pacing through shared.
func NewGlobal(cfg GlobalConfig, shared Shared) *Global {
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	g := &Global{shared: shared, cfg: cfg}
	local := cfg.Config
	tell := local.OnEvent
	local.OnEvent = func(e Event) {
		if e.Kind == "paused" && e.Pause > 0 {
			// Shared once the call that caused it has its own slot (the
			// call that spends a stated quota's last unit still goes).
			g.mu.Lock()
			g.pending = max(g.pending, e.Pause)
			g.pendingAt = g.now()
			g.mu.Unlock()
		}
		if tell != nil {
			tell(e)
		}
	}
	g.Local = NewLocal(local)
	return g
}

// Wait implements Limiter.
func (g *Global) Wait(ctx context.Context, key string, maxWait time.Duration) (Slot, error) {
	return g.wait(ctx, key, maxWait, g.Local.Wait)
}

// WaitBackground implements Limiter.
func (g *Global) WaitBackground(ctx context.Context, key string, maxWait time.Duration) (Slot, error) {
	return g.wait(ctx, key, maxWait, g.Local.WaitBackground)
}

// wait takes this replica's turn from local, then the shared slot.
func (g *Global) wait(ctx context.Context, key string, maxWait time.Duration, local func(context.Context, string, time.Duration) (Slot, error)) (Slot, error) {
	start := g.now()
	s, err := local(ctx, key, maxWait)
	defer g.sharePending() // a quota this call spent holds the calls after it
	if err != nil {
		return s, err
	}
	iv := g.pace()
	for {
		now := g.now()
		left := budget(ctx, now, max(maxWait-now.Sub(start), iv/graceShare))
		if until := g.shared.PausedUntil(); until.After(now) {
			// Another replica heard the vendor ask for a pause: wait it
			// out here, within this call's wait, before asking for a slot.
			if until.Sub(now) > left {
				return Slot{}, &ExceededError{RetryAfter: until.Sub(now), Paused: true, Reason: PauseShared}
			}
			if err := sleepOrWake(ctx, until.Sub(now), nil); err != nil {
				return Slot{}, err
			}
			continue
		}
		if g.skipStore(now) {
			return g.degraded(ctx, key, s, left)
		}
		at, wait, taken, paused, err := g.shared.Reserve(ctx, key, iv, g.burst, left)
		if err != nil {
			g.failed(now)
			return g.degraded(ctx, key, s, max(left-g.now().Sub(now), 0))
		}
		g.answered()
		if !taken {
			return Slot{}, g.refused(wait, paused)
		}
		// Sleep until the slot's time on this clock: the release time Sent
		// and Observe measure from.
		if err := sleepOrWake(ctx, at.Sub(g.now()), nil); err != nil {
			return Slot{}, err
		}
		// A pause published while this call waited for its slot holds it
		// too: it asks again for one after the pause, within its wait
		// (the loop's first check).
		if g.shared.PausedUntil().After(g.now()) {
			continue
		}
		s.At = at
		return s, nil
	}
}

// refused is the error for a call the shared pace has no slot for in time.
func (g *Global) refused(wait time.Duration, paused bool) error {
	if paused {
		return &ExceededError{RetryAfter: wait, Paused: true, Reason: PauseShared}
	}
	if g.cfg.Adaptive {
		g.Local.mu.Lock()
		err := g.exceeded(wait, false)
		g.unlock()
		return err
	}
	return &ExceededError{RetryAfter: wait}
}

// pace is the interval this replica's callers are paced at now.
func (l *Local) pace() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.interval()
}

// skipStore says the store is down and it is not yet time to try it.
// The first call after Retry is the one that tries it: the next try is
// put a Retry later at once, so that calls arriving together do not all
// pay the timeout.
func (g *Global) skipStore(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.down {
		return false
	}
	if now.Before(g.retryAt) {
		return true
	}
	g.retryAt = now.Add(g.cfg.Retry)
	return false
}

// failed marks the store down, until a call tries again after Retry.
func (g *Global) failed(now time.Time) {
	g.mu.Lock()
	g.down, g.retryAt = true, now.Add(g.cfg.Retry)
	g.mu.Unlock()
}

// answered marks the store up.
func (g *Global) answered() {
	g.mu.Lock()
	g.down = false
	g.mu.Unlock()
}

// degraded paces a call while the store is down: refused when Closed,
// else at this replica's share of the rate.
func (g *Global) degraded(ctx context.Context, key string, s Slot, left time.Duration) (Slot, error) {
	if g.cfg.Closed {
		return Slot{}, &ExceededError{RetryAfter: g.cfg.Retry, Unavailable: true}
	}
	fb := g.fallbackFor(g.shared.Replicas())
	if fb == nil {
		return s, nil // unlimited: only this replica's own pause binds
	}
	fs, err := fb.Wait(ctx, key, left)
	if err != nil {
		return Slot{}, err
	}
	s.At = fs.At
	return s, nil
}

// fallbackFor is the local pace at the rate's share for n replicas, made
// again when n changes; nil when the upstream has no rate.
func (g *Global) fallbackFor(n int) *Local {
	iv := g.pace()
	if iv == 0 {
		return nil
	}
	rate := 1 / iv.Seconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fallback == nil || g.share != n {
		g.fallback = NewLocal(Config{Rate: rate / float64(max(n, 1)), Burst: 1, Now: g.cfg.Now})
		g.share = n
	}
	return g.fallback
}

// Status implements Limiter: the Local's, and whether the store answers.
func (g *Global) Status() Status {
	s := g.Local.Status()
	s.Scope = "global"
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !g.down:
	case g.cfg.Closed:
		s.Degraded = "closed"
	default:
		s.Degraded = "local share 1/" + strconv.Itoa(max(g.share, 1))
	}
	return s
}

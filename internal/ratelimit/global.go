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
	// No slot comes before notBefore (zero: no such bound).
	Reserve(ctx context.Context, key string, iv time.Duration, burst int, maxWait time.Duration, notBefore time.Time) (at time.Time, wait time.Duration, taken, paused bool, err error)
	// Pause holds every replica's calls for d from now.
	Pause(ctx context.Context, d time.Duration) error
	// PausedUntil is the end of the last pause another replica published,
	// on this replica's clock: a call already given a slot checks it
	// before it leaves.
	PausedUntil() time.Time
	// Share is this replica's place among the replicas last seen live:
	// rank from 0, of n (at least 1).
	Share() (rank, n int)
	// Tell shares what this replica learned of the vendor; Hear is told
	// what the others learned (and, once, what the store still holds).
	Tell(ctx context.Context, s Signal) error
	Hear(f func(Signal))
	// Back agrees, among the replicas coming back to the store after it
	// was unreachable, on when they stop taking turns: the first to ask
	// sets until (kept for ttl), and every replica is told the time set.
	Back(ctx context.Context, until time.Time, ttl time.Duration) (time.Time, error)
}

// GlobalConfig sets up a Global limiter.
type GlobalConfig struct {
	Config
	// Closed refuses calls while the store cannot be reached; otherwise
	// each replica takes its turns at its share of the rate.
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
// calls here too. While the store cannot be reached, the replicas take
// turns on one wall-clock grid, each at its share of the rate (degraded),
// or, when Closed, the calls are refused. It implements Limiter.
type Global struct {
	*Local
	shared Shared
	cfg    GlobalConfig

	mu      sync.Mutex
	down    bool                 // the store did not answer the last try
	retryAt time.Time            // when a call tries the store again
	grid    map[string]time.Time // while down: each key's next turn on the grid
	laidFor int                  // the replicas the grid was last laid for
	// The switches between the shared pace and the turns leave a gap of
	// the longest wait: calls already given a slot (or a turn) by the one
	// may still leave up to that long after it, and the other must not
	// give out a time among theirs.
	gridFrom   time.Time // no turn before it
	turnRank   int       // this replica's place among turnN, as the store was lost
	turnN      int
	sharedFrom time.Time     // no shared slot before it
	turnsUntil time.Time     // back from being unreachable: turns are taken until it
	longest    time.Duration // the longest wait a call has asked for

	pending   time.Duration // a pause this replica heard, not yet shared
	pendingAt time.Time     // when it was heard

	toldQuota Signal    // the stated quota last told
	toldAt    time.Time // when
	toldReset time.Time // when its window ends
}

// tellEvery is how often, at most, a replica tells the vendor's quota as
// it states it (a spent one, or a new window, at once).
const tellEvery = 200 * time.Millisecond

// tell shares s, as a pause is shared: on the call that learned it,
// bounded by the store's timeout. Rate changes are rare, and a stated
// quota is told at most every tellEvery.
func (g *Global) tell(s Signal) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = g.shared.Tell(ctx, s) // unreachable: each replica goes on with what it learns itself
}

// tellQuota shares the vendor's quota as this replica last read it, when
// it is spent, in a new window, or tellEvery after the last told.
func (g *Global) tellQuota() {
	q, ok := g.statedQuota()
	if !ok {
		return
	}
	now := g.now()
	reset := now.Add(q.Reset)
	g.mu.Lock()
	last := g.toldQuota
	newWindow := reset.After(g.toldReset.Add(500 * time.Millisecond))
	spent := q.Remaining == 0 && last.Remaining > 0
	due := now.Sub(g.toldAt) >= tellEvery && q.Remaining != last.Remaining
	if !newWindow && !spent && !due {
		g.mu.Unlock()
		return
	}
	g.toldQuota, g.toldAt, g.toldReset = q, now, reset
	g.mu.Unlock()
	g.tell(q)
}

// heard applies what another replica learned.
func (g *Global) heard(s Signal) {
	if s.Rate > 0 {
		g.adopt(s)
	}
	if s.Reset > 0 {
		g.adoptQuota(s)
	}
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
	g.tellQuota()
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
		if e.Kind == "rate" && e.Reason != ReasonShared {
			if s, ok := g.learned(); ok {
				g.tell(s)
			}
		}
		if tell != nil {
			tell(e)
		}
	}
	g.Local = NewLocal(local)
	shared.Hear(g.heard)
	return g
}

// Wait implements Limiter.
func (g *Global) Wait(ctx context.Context, key string, maxWait time.Duration) (Slot, error) {
	return g.wait(ctx, key, maxWait, g.Local.Wait, false)
}

// WaitBackground implements Limiter.
func (g *Global) WaitBackground(ctx context.Context, key string, maxWait time.Duration) (Slot, error) {
	return g.wait(ctx, key, maxWait, g.Local.WaitBackground, true)
}

// wait takes this replica's turn from local, then the shared slot; while
// the store is down, a turn of this replica's share instead.
func (g *Global) wait(ctx context.Context, key string, maxWait time.Duration, local func(context.Context, string, time.Duration) (Slot, error), background bool) (Slot, error) {
	start := g.now()
	g.mu.Lock()
	g.longest = max(g.longest, maxWait)
	turns := start.Before(g.turnsUntil)
	g.mu.Unlock()
	if turns || g.skipStore(start) {
		// Turns, not this replica's own queue first: a turn is its queue.
		return g.degraded(ctx, key, Slot{At: start}, budget(ctx, start, maxWait), background)
	}
	s, err := local(ctx, key, maxWait)
	defer g.sharePending() // a quota this call spent holds the calls after it
	if err != nil {
		return s, err
	}
	iv := g.pace()
	late := 0 // slots given up for waking too late
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
		at, wait, taken, paused, err := g.shared.Reserve(ctx, key, iv, g.burst, left, g.sharedSince(now, iv))
		if err != nil {
			g.failed(now, iv)
			return g.degraded(ctx, key, s, max(left-g.now().Sub(now), 0), background)
		}
		if g.answered(ctx, now, iv) && !taken {
			if g.inTurns(g.now()) {
				// Back before every replica may be: turns still, not
				// shared slots among theirs.
				return g.degraded(ctx, key, s, max(left-g.now().Sub(now), 0), background)
			}
			continue // back after the others: a shared slot
		}
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
		if g.tooLate(at, iv, iv) && late < lateTries {
			late++
			continue // the next slot is another replica's: take a later one
		}
		s.At = at
		return s, nil
	}
}

// Sent implements Limiter. A call that went out later than its shared
// slot by more than tooLate allows (held up between its slot and the
// wire: after the check in wait) may land within the vendor's interval
// of the next slot, another replica's: this replica then holds every
// replica's calls until the vendor's interval after it, through the
// shared pause (one script and one publish, for such a call only). The
// next call, waking inside the hold, takes a later slot.
func (g *Global) Sent(key string, s Slot, at time.Time) {
	g.Local.Sent(key, s, at)
	if s.iv == 0 || s.At.IsZero() || !g.lateBy(s.At, at, s.iv, s.iv) {
		return // the common case: no lock taken on the write path
	}
	g.mu.Lock()
	down := g.down
	g.mu.Unlock()
	if down {
		return
	}
	if hold := at.Add(g.vendorInterval(s.iv)).Sub(g.now()); hold > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.shared.Pause(ctx, hold) // unreachable: the next call goes at its slot
		cancel()
	}
}

// lateTries is how many slots (or turns) a call gives up for waking too
// late before it goes late all the same.
const lateTries = 2

// tooLate says a call that slept until its slot at woke too late to go:
// the next slot, an interval iv after at, may be another replica's, and
// the vendor counts calls closer than vendorIv apart against it (the
// pace's interval less the headroom, or a turn less the margin). A call
// one pacer holds up delays the calls after it alike; one replica's late
// call lands closer to another's, which was on time. Past three quarters
// of the room between the two, the slot is given up. Without headroom,
// or with less room than minRoom, no slot is given up.
func (g *Global) tooLate(at time.Time, iv, turn time.Duration) bool {
	return g.lateBy(at, g.now(), iv, turn)
}

// lateBy says a call for the slot (or turn) at that left at left went too
// late, as tooLate.
func (g *Global) lateBy(at, left time.Time, iv, turn time.Duration) bool {
	room := turn - g.vendorInterval(iv)
	return room >= minRoom && left.Sub(at) > room*3/4
}

// vendorInterval is the vendor's own interval for the pace's iv: iv less
// the headroom.
func (g *Global) vendorInterval(iv time.Duration) time.Duration {
	return time.Duration(float64(iv) * (1 - g.cfg.Headroom))
}

// minRoom: under it (fast paces) a host's timers are not that precise,
// nor a vendor's clock: most calls would wake "too late", and giving
// their slots up would only slow the pace.
const minRoom = time.Millisecond

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

// pausedFor is how much of this replica's own pause is left, and why.
func (l *Local) pausedFor(now time.Time) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pauseAt.After(now) {
		return l.pauseAt.Sub(now), l.reason
	}
	return 0, ""
}

// pace is the interval this replica's callers are paced at now.
func (l *Local) pace() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.interval()
}

// skipStore says the store is down and it is not yet time to try it.
// The first call after the try is due is the one that tries it: the next
// try is put a Retry later at once, so that calls arriving together do not
// all pay the timeout. Tries are due on the wall clock's multiples of
// Retry, the same instants on every replica, so that they come back to
// the shared pace together.
func (g *Global) skipStore(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.down {
		return false
	}
	if now.Before(g.retryAt) {
		return true
	}
	g.retryAt = g.nextTry(now)
	return false
}

// nextTry is the first multiple of Retry on the wall clock after now.
func (g *Global) nextTry(now time.Time) time.Time {
	r := int64(g.cfg.Retry)
	return time.Unix(0, (now.UnixNano()/r+1)*r)
}

// failed marks the store down, until a try after Retry. Turns start once
// the slots the store gave out may have been used.
func (g *Global) failed(now time.Time, iv time.Duration) {
	g.mu.Lock()
	if !g.down {
		g.gridFrom = now.Add(g.longest + iv/graceShare)
		// The turns are laid for the replicas seen live until now: while
		// the store is away, the list it keeps is no guide (a replica
		// coming back to it first would see itself alone).
		g.turnRank, g.turnN = g.shared.Share()
	}
	g.down, g.retryAt = true, g.nextTry(now)
	g.mu.Unlock()
}

// answered marks the store up, and says whether it was down. Back from
// being unreachable (with on_failure local), this replica takes turns
// until the instant the replicas agree on through the store, and shared
// slots start once every turn given out until then may have been used.
//
// The replicas try the store at the same instants (nextTry), but one
// whose try came just before the store answered again comes back a
// Retry after the others: until then it takes turns, which shared slots
// the others took in the meantime would fall among. So the first replica
// back sets the end of the turns a Retry after its try, and a replica
// back by then keeps taking turns until it; one back at it or later
// takes none. With on_failure closed no turn was given out: shared slots
// start once the slots given before the store was lost may have been used.
func (g *Global) answered(ctx context.Context, now time.Time, iv time.Duration) bool {
	g.mu.Lock()
	was := g.down
	g.down = false
	tried := g.tried(now)
	g.mu.Unlock()
	if !was {
		return false
	}
	until := tried
	if !g.cfg.Closed {
		until = tried.Add(g.cfg.Retry)
		agreed, err := g.shared.Back(ctx, until, g.cfg.Retry+g.longestWait()+time.Second)
		if err == nil {
			until = agreed // the first replica's, or this one's if it is the first
		}
		// A time agreed in an earlier outage (its key not yet expired) is
		// in the past: this replica's own turns still bound it.
		until = later(until, tried)
	}
	g.mu.Lock()
	g.turnsUntil = until
	g.sharedFrom = until.Add(g.longest + iv/graceShare + iv)
	g.mu.Unlock()
	return true
}

// inTurns says this replica, back from the store being unreachable, takes
// turns still.
func (g *Global) inTurns(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return now.Before(g.turnsUntil)
}

// longestWait is the longest wait a call has asked for.
func (g *Global) longestWait() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.longest
}

// tried is the instant of the try at now: the multiple of Retry on the
// wall clock at or before it.
func (g *Global) tried(now time.Time) time.Time {
	r := int64(g.cfg.Retry)
	return time.Unix(0, now.UnixNano()/r*r)
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sharedSince is the time no shared slot may come before. For the call
// that tries the store while it is down, the latest the turns may end
// (answered): a slot before it is not taken, and the call, finding the
// store back, asks again.
func (g *Global) sharedSince(now time.Time, iv time.Duration) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		until := g.tried(now)
		if !g.cfg.Closed {
			until = until.Add(g.cfg.Retry)
		}
		return until.Add(g.longest + iv/graceShare + iv)
	}
	return g.sharedFrom
}

// turnMargin: turns are an interval and 1/turnMargin of one apart. One
// pacer's calls leave late together (a host busy for a few milliseconds
// delays each of them alike); two replicas' calls on one grid are late
// each on its own, and a turn that leaves a few milliseconds late lands
// that much closer to the next replica's. Against nginx at its exact rate,
// turns an interval apart drew 429s in one of three 20 s outages.
const turnMargin = 20

// degraded paces a call while the store is down: refused when Closed,
// else at this replica's share of the rate.
//
// The share is a turn on a grid of wall-clock slots: with n replicas at
// interval iv, replica rank r may send at k·n·iv + r·iv. Replicas that pace
// each at rate/n on their own would still collide (a vendor without burst
// refuses two calls closer than its interval, whoever sent them); taking
// turns on one grid keeps them an interval apart, as far as the hosts'
// clocks agree (NTP keeps them within a few milliseconds; the headroom
// covers that).
//
// A call reserves its turn and sleeps until it; a job delivery
// (background) takes only the next turn, so that it does not queue ahead
// of the application's calls. The pause this replica heard binds here too.
func (g *Global) degraded(ctx context.Context, key string, s Slot, left time.Duration, background bool) (Slot, error) {
	if g.cfg.Closed {
		return Slot{}, &ExceededError{RetryAfter: g.cfg.Retry, Unavailable: true}
	}
	if d, reason := g.pausedFor(g.now()); d > 0 {
		if d > left {
			return Slot{}, &ExceededError{RetryAfter: d, Paused: true, Reason: reason}
		}
		if err := sleepOrWake(ctx, d, nil); err != nil {
			return Slot{}, err
		}
		left -= d
	}
	pace := g.pace()
	if pace == 0 {
		return s, nil // unlimited: only this replica's own pause binds
	}
	iv := pace + pace/turnMargin
	deadline := g.now().Add(left)
	for late := 0; ; late++ {
		at, err := g.turn(key, iv, deadline.Sub(g.now()), background)
		if err != nil {
			return Slot{}, err
		}
		if err := sleepOrWake(ctx, at.Sub(g.now()), nil); err != nil {
			return Slot{}, err
		}
		if late < lateTries && g.tooLate(at, pace, iv) {
			continue // the next turn is another replica's: take a later one
		}
		s.At = at
		return s, nil
	}
}

// turn reserves this replica's next turn for key on the grid of turns iv
// apart, within left (background: only the next one).
func (g *Global) turn(key string, iv, left time.Duration, background bool) (time.Time, error) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	rank, n := g.turnRank, max(g.turnN, 1)
	rank = min(max(rank, 0), n-1)
	period := time.Duration(n) * iv
	if g.grid == nil || g.laidFor != n {
		g.grid, g.laidFor = map[string]time.Time{}, n
	}
	from := now
	for _, t := range []time.Time{g.grid[key], g.gridFrom} {
		if t.After(from) {
			from = t
		}
	}
	// The first turn of this replica's at or after from.
	offset := time.Duration(rank) * iv
	k := (from.UnixNano() - int64(offset) + int64(period) - 1) / int64(period)
	at := time.Unix(0, k*int64(period)+int64(offset))
	if at.Sub(now) > left || (background && at.Sub(now) > period) {
		return time.Time{}, &ExceededError{RetryAfter: at.Sub(now)}
	}
	g.grid[key] = at.Add(period)
	return at, nil
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
		s.Degraded = "local turn " + strconv.Itoa(g.turnRank+1) + " of " + strconv.Itoa(max(g.turnN, 1))
	}
	return s
}

package breaker

import (
	"errors"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/window"
)

// ErrOpen is returned while the breaker refuses calls.
var ErrOpen = errors.New("circuit breaker open")

// OpenError says when the breaker expects to let calls through again.
type OpenError struct{ RetryAfter time.Duration }

func (e *OpenError) Error() string {
	return "circuit breaker open, retry in " + e.RetryAfter.Round(time.Millisecond).String()
}

func (e *OpenError) Unwrap() error { return ErrOpen }

// State is a breaker state.
type State int

// The breaker states.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	return [...]string{"closed", "open", "half_open"}[s]
}

// Outcome is how a permitted call ended.
type Outcome int

// The call outcomes.
const (
	Success Outcome = iota
	Failure
	// Ignored is a call that tells nothing of the upstream's health, such as
	// one whose client went away.
	Ignored
)

// The window's counters.
const (
	calls = iota
	failures
	slowCalls
)

// Config tunes a breaker. Rates are percentages in (0, 100].
type Config struct {
	Window          time.Duration
	MinCalls        int
	FailureRate     float64
	SlowCallRate    float64
	SlowCall        time.Duration
	OpenDuration    time.Duration
	MaxOpenDuration time.Duration // 0: the open duration never grows
	HalfOpenCalls   int
	// OnStateChange, if set, hears of every transition with its evidence.
	// It is called with the breaker's lock held: it must not call back.
	OnStateChange func(Transition)
	Now           func() time.Time
}

// Transition is a change of state and the figures that caused it.
type Transition struct {
	From, To State
	// Calls, Failures and Slow are the window's counts when the breaker
	// opened from closed, or the probes' counts when it left half-open.
	Calls, Failures, Slow int
	// OpenFor is how long an opened breaker stays open.
	OpenFor time.Duration
	// Shared says the replicas together decided it (shared.go).
	Shared bool
}

// Breaker is safe for concurrent use.
type Breaker struct {
	cfg Config

	mu       sync.Mutex
	state    State         // guarded by mu
	gen      uint64        // guarded by mu; bumped on every transition
	window   window.Window // guarded by mu
	openedAt time.Time     // guarded by mu
	openFor  time.Duration // guarded by mu
	since    time.Time     // guarded by mu; when state was entered (zero: since New)
	probing  bool          // guarded by mu; a half-open probe is out
	probes   int           // guarded by mu; probes answered in this half-open
	failed   int           // guarded by mu; of them, failures
	slowed   int           // guarded by mu; of them, slow calls
}

// New returns a closed breaker.
func New(cfg Config) *Breaker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MinCalls = max(cfg.MinCalls, 1)
	cfg.HalfOpenCalls = max(cfg.HalfOpenCalls, 1)
	return &Breaker{cfg: cfg, window: window.New(cfg.Window), openFor: cfg.OpenDuration}
}

// Permit is a permission to make one call; report its outcome with Done.
type Permit struct {
	b     *Breaker
	gen   uint64
	probe bool
}

// Allow asks to make a call. It returns an *OpenError while the breaker is
// open, or half-open with a probe out: probes go one after another, each
// once the previous one has answered.
func (b *Breaker) Allow() (Permit, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	if b.state == Open {
		if wait := b.openedAt.Add(b.openFor).Sub(now); wait > 0 {
			return Permit{}, &OpenError{RetryAfter: wait}
		}
		b.transition(HalfOpen, now, Transition{})
	}
	if b.state == HalfOpen {
		if b.probing {
			return Permit{}, &OpenError{RetryAfter: min(b.openFor, time.Second)}
		}
		b.probing = true
		return Permit{b: b, gen: b.gen, probe: true}, nil
	}
	return Permit{b: b, gen: b.gen}, nil
}

// Rejecting returns the *OpenError Allow would return while the breaker is
// open, or nil, without taking a permit: a caller can fail fast before
// spending anything else on a call that will not be made. Allow still
// decides a call that gets past it.
func (b *Breaker) Rejecting() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != Open {
		return nil
	}
	if wait := b.openedAt.Add(b.openFor).Sub(b.cfg.Now()); wait > 0 {
		return &OpenError{RetryAfter: wait}
	}
	return nil
}

// Done records the outcome of a permitted call that took elapsed. A permit
// from before a state change is ignored, so late answers to old calls do not
// judge the new state.
func (p Permit) Done(o Outcome, elapsed time.Duration) {
	b := p.b
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.gen != b.gen {
		return
	}
	now := b.cfg.Now()
	slow := b.cfg.SlowCall > 0 && elapsed >= b.cfg.SlowCall
	if p.probe {
		b.probeDone(o, slow, now)
		return
	}
	if o == Ignored {
		return
	}
	b.window.Add(now, calls, 1)
	if o == Failure {
		b.window.Add(now, failures, 1)
	}
	if slow {
		b.window.Add(now, slowCalls, 1)
	}
	if n := b.window.Sums(now); b.tripped(n) {
		b.transition(Open, now, Transition{Calls: n[calls], Failures: n[failures], Slow: n[slowCalls]})
	}
}

// probeDone judges a probe. The breaker closes as soon as the probes'
// failure and slow-call rates cannot reach their thresholds whatever the
// remaining probes answer, and opens as soon as one of them has (the
// semantics of resilience4j's half-open state, with probes in sequence).
func (b *Breaker) probeDone(o Outcome, slow bool, now time.Time) {
	b.probing = false
	if o == Ignored {
		return // the slot goes to another probe
	}
	b.probes++
	if o == Failure {
		b.failed++
	}
	if slow && b.cfg.SlowCall > 0 {
		b.slowed++
	}
	n := b.cfg.HalfOpenCalls
	reaches := func(k int, rate float64) bool { return float64(k)*100 >= rate*float64(n) }
	left := n - b.probes
	ev := Transition{Calls: b.probes, Failures: b.failed, Slow: b.slowed}
	switch {
	case reaches(b.failed, b.cfg.FailureRate) || reaches(b.slowed, b.cfg.SlowCallRate):
		b.openFor = b.grow(b.openFor)
		b.transition(Open, now, ev)
	case !reaches(b.failed+left, b.cfg.FailureRate) && (b.cfg.SlowCall == 0 || !reaches(b.slowed+left, b.cfg.SlowCallRate)):
		b.openFor = b.cfg.OpenDuration
		b.transition(Closed, now, ev)
	}
}

func (b *Breaker) grow(d time.Duration) time.Duration {
	if b.cfg.MaxOpenDuration <= b.cfg.OpenDuration {
		return b.cfg.OpenDuration
	}
	return min(2*d, b.cfg.MaxOpenDuration)
}

func (b *Breaker) tripped(n [window.Counters]int) bool {
	if n[calls] < b.cfg.MinCalls {
		return false
	}
	pct := func(i int) float64 { return 100 * float64(n[i]) / float64(n[calls]) }
	return pct(failures) >= b.cfg.FailureRate || (b.cfg.SlowCall > 0 && pct(slowCalls) >= b.cfg.SlowCallRate)
}

// transition moves to state to, with the evidence in ev. Caller holds mu.
func (b *Breaker) transition(to State, now time.Time, ev Transition) {
	from := b.state
	b.state, b.gen, b.since = to, b.gen+1, now
	b.probing, b.probes, b.failed, b.slowed = false, 0, 0, 0
	switch to {
	case Open:
		b.openedAt = now
	case Closed:
		b.window.Reset()
	}
	if b.cfg.OnStateChange != nil && from != to {
		ev.From, ev.To = from, to
		if to == Open {
			ev.OpenFor = b.openFor
		}
		b.cfg.OnStateChange(ev)
	}
}

// State reports the current state, moving open to half-open when due.
func (b *Breaker) State() State {
	s, _ := b.StateSince()
	return s
}

// StateSince reports the current state and when the breaker entered it;
// the time is zero for a breaker closed since it was made.
func (b *Breaker) StateSince() (State, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open {
		if due := b.openedAt.Add(b.openFor); !b.cfg.Now().Before(due) {
			return HalfOpen, due
		}
	}
	return b.state, b.since
}

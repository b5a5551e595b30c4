package breaker

import (
	"errors"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(c *clock, mod func(*Config)) (*Breaker, *[]string) {
	var changes []string
	cfg := Config{
		Window: 10 * time.Second, MinCalls: 10, FailureRate: 50, SlowCallRate: 80,
		SlowCall: time.Second, OpenDuration: 5 * time.Second, MaxOpenDuration: 20 * time.Second,
		HalfOpenCalls: 2, Now: c.now,
		OnStateChange: func(tr Transition) { changes = append(changes, tr.From.String()+">"+tr.To.String()) },
	}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg), &changes
}

// setup returns a clock at zero and a breaker on it.
func setup(mod func(*Config)) (*clock, *Breaker) {
	c := &clock{t: time.Unix(0, 0)}
	b, _ := newTest(c, mod)
	return c, b
}

func call(t *testing.T, b *Breaker, o Outcome, elapsed time.Duration) {
	t.Helper()
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	p.Done(o, elapsed)
}

func TestOpensOnFailureRateAfterMinCalls(t *testing.T) {
	_, b := setup(nil)
	for i := 0; i < 9; i++ {
		call(t, b, Failure, 0)
	}
	if b.State() != Closed {
		t.Fatalf("opened after 9 calls, want MinCalls=10 first")
	}
	call(t, b, Failure, 0)
	if b.State() != Open {
		t.Fatalf("state = %v after 10 failures, want open", b.State())
	}
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) || oe.RetryAfter != 5*time.Second {
		t.Fatalf("Allow = %v, want OpenError retry in 5s", err)
	}
}

func TestStaysClosedBelowThreshold(t *testing.T) {
	_, b := setup(nil)
	for i := 0; i < 100; i++ {
		o := Success
		if i%3 == 0 {
			o = Failure
		}
		call(t, b, o, 0)
	}
	if b.State() != Closed {
		t.Errorf("state = %v at 34%% failures, want closed", b.State())
	}
}

func TestOpensOnSlowCallRate(t *testing.T) {
	_, b := setup(nil)
	for i := 0; i < 10; i++ {
		call(t, b, Success, 2*time.Second)
	}
	if b.State() != Open {
		t.Errorf("state = %v after 10 slow calls, want open", b.State())
	}
}

func TestOldOutcomesSlideOut(t *testing.T) {
	c, b := setup(nil)
	for i := 0; i < 9; i++ {
		call(t, b, Failure, 0)
	}
	c.advance(11 * time.Second)
	call(t, b, Failure, 0)
	if b.State() != Closed {
		t.Errorf("state = %v, want closed: the first 9 failures left the window", b.State())
	}
}

func TestIgnoredOutcomesDoNotCount(t *testing.T) {
	_, b := setup(nil)
	for i := 0; i < 50; i++ {
		call(t, b, Ignored, 0)
	}
	call(t, b, Failure, 0)
	if b.State() != Closed {
		t.Errorf("state = %v, want closed: ignored calls must not count", b.State())
	}
}

func TestHalfOpenProbesThenCloses(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	b, changes := newTest(c, func(cfg *Config) { cfg.MinCalls = 1 })
	call(t, b, Failure, 0)
	c.advance(5 * time.Second)
	p1, err := b.Allow()
	if err != nil {
		t.Fatalf("first probe refused: %v", err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second call in half-open allowed while the first probe is out, want probes one after another")
	}
	p1.Done(Success, 0)
	if b.State() != HalfOpen {
		t.Fatalf("state = %v after 1 of 2 probes, want half_open: a failure of the second would still reach 50%%", b.State())
	}
	p2, err := b.Allow()
	if err != nil {
		t.Fatalf("second probe refused after the first answered: %v", err)
	}
	p2.Done(Success, 0)
	if b.State() != Closed {
		t.Fatalf("state = %v after 2 good probes, want closed", b.State())
	}
	want := []string{"closed>open", "open>half_open", "half_open>closed"}
	if len(*changes) != len(want) {
		t.Fatalf("changes = %v, want %v", *changes, want)
	}
	for i := range want {
		if (*changes)[i] != want[i] {
			t.Errorf("changes = %v, want %v", *changes, want)
		}
	}
}

func TestFailedProbeReopensLonger(t *testing.T) {
	c, b := setup(func(cfg *Config) { cfg.MinCalls = 1 })
	call(t, b, Failure, 0)
	for _, wantOpen := range []time.Duration{10 * time.Second, 20 * time.Second, 20 * time.Second} {
		c.advance(time.Hour)
		call(t, b, Failure, 0) // the probe fails
		_, err := b.Allow()
		var oe *OpenError
		if !errors.As(err, &oe) || oe.RetryAfter != wantOpen {
			t.Fatalf("after failed probe: %v, want open for %v", err, wantOpen)
		}
	}
	c.advance(time.Hour)
	call(t, b, Success, 0)
	call(t, b, Success, 0)
	call(t, b, Failure, 0) // closed again; one failure is enough with MinCalls=1
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) || oe.RetryAfter != 5*time.Second {
		t.Fatalf("after closing, reopen = %v, want the base 5s", err)
	}
}

func TestIgnoredProbeFreesItsSlot(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	b, _ := newTest(c, func(cfg *Config) { cfg.MinCalls = 1; cfg.HalfOpenCalls = 1 })
	call(t, b, Failure, 0)
	c.advance(5 * time.Second)
	call(t, b, Ignored, 0)
	call(t, b, Success, 0)
	if b.State() != Closed {
		t.Errorf("state = %v, want closed", b.State())
	}
}

func TestLateOutcomeFromOldStateIgnored(t *testing.T) {
	c, b := setup(func(cfg *Config) { cfg.MinCalls = 1 })
	late, _ := b.Allow()
	call(t, b, Failure, 0) // opens
	c.advance(5 * time.Second)
	probe, _ := b.Allow()
	late.Done(Failure, 0) // from the closed state: must not reopen
	if b.State() != HalfOpen {
		t.Fatalf("state = %v, want half_open", b.State())
	}
	probe.Done(Success, 0)
}

// Rejecting answers as Allow would while open, and takes no probe slot.
func TestRejectingTakesNoPermit(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	b, _ := newTest(c, func(cfg *Config) { cfg.MinCalls = 1 })
	if err := b.Rejecting(); err != nil {
		t.Fatalf("closed: Rejecting = %v, want nil", err)
	}
	call(t, b, Failure, 0)
	c.advance(2 * time.Second)
	var oe *OpenError
	if err := b.Rejecting(); !errors.As(err, &oe) || oe.RetryAfter != 3*time.Second {
		t.Fatalf("open: Rejecting = %v, want OpenError retry in 3s", err)
	}
	c.advance(3 * time.Second)
	for i := 0; i < 5; i++ {
		if err := b.Rejecting(); err != nil {
			t.Fatalf("open time over: Rejecting = %v, want nil (Allow decides the probes)", err)
		}
	}
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("first probe refused after Rejecting calls: %v", err)
	}
	p.Done(Success, 0)
	if _, err := b.Allow(); err != nil {
		t.Fatalf("second probe refused: Rejecting took a probe slot: %v", err)
	}
}

// Half-open closes on the probes' failure rate, not only when every probe
// succeeds: one failure in three is under a 50% threshold.
func TestHalfOpenClosesOnProbeFailureRate(t *testing.T) {
	for _, tc := range []struct {
		outcomes []Outcome
		want     State
	}{
		{[]Outcome{Failure, Success, Success}, Closed},
		{[]Outcome{Success, Failure, Success}, Closed},
		{[]Outcome{Failure, Failure}, Open},
		{[]Outcome{Success, Failure, Failure}, Open},
		{[]Outcome{Success, Success}, Closed}, // the third cannot reach 50%
	} {
		c := &clock{t: time.Unix(0, 0)}
		b, _ := newTest(c, func(cfg *Config) { cfg.MinCalls = 1; cfg.HalfOpenCalls = 3 })
		call(t, b, Failure, 0)
		c.advance(5 * time.Second)
		for i, o := range tc.outcomes {
			if b.State() != HalfOpen {
				t.Fatalf("%v: decided %v after %d probes, want %d probes", tc.outcomes, b.State(), i, len(tc.outcomes))
			}
			call(t, b, o, 0)
		}
		if b.State() != tc.want {
			t.Errorf("probes %v: state %v, want %v", tc.outcomes, b.State(), tc.want)
		}
	}
}

// StateSince tells the dashboard how long the breaker has been in its
// state: zero while closed since made, the opening time when open, and
// the end of the open time once it is due for a probe.
func TestStateSince(t *testing.T) {
	c, b := setup(nil)
	if s, at := b.StateSince(); s != Closed || !at.IsZero() {
		t.Fatalf("new breaker: %v since %v, want closed since zero", s, at)
	}
	c.advance(3 * time.Second)
	opened := c.now()
	for range 10 {
		call(t, b, Failure, 0)
	}
	c.advance(time.Second)
	if s, at := b.StateSince(); s != Open || !at.Equal(opened) {
		t.Fatalf("after 10 failures: %v since %v, want open since %v", s, at, opened)
	}
	c.advance(4 * time.Second)
	if s, at := b.StateSince(); s != HalfOpen || !at.Equal(opened.Add(5*time.Second)) {
		t.Fatalf("open time over: %v since %v, want half-open since %v", s, at, opened.Add(5*time.Second))
	}
}

package clock

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// mustClose fails the test unless ch closes within 5s.
func mustClose(t *testing.T, ch <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(failure)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return cond()
}

func TestBoundedEndsAtItsDeadlineWithoutDone(t *testing.T) {
	b := WithDeadline(context.Background(), time.Now().Add(30*time.Millisecond))
	defer b.Stop()
	if err := b.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v, want nil", err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return b.Err() != nil }) {
		t.Fatal("Err stayed nil past the deadline")
	}
	if err := b.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	if b.made.Load() {
		t.Error("a timer was started though nothing asked for Done")
	}
}

func TestBoundedDoneClosesAtTheDeadline(t *testing.T) {
	b := WithDeadline(context.Background(), time.Now().Add(30*time.Millisecond))
	defer b.Stop()
	mustClose(t, b.Done(), "Done not closed 5s after a 30ms deadline")
	if err := b.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	if got := context.Cause(b); !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("Cause = %v, want DeadlineExceeded", got)
	}
}

func TestBoundedFollowsItsParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	b := WithDeadline(parent, time.Now().Add(time.Hour))
	defer b.Stop()
	if got := b.Value(ctxKey{}); got != "v" {
		t.Errorf("Value = %v, want the parent's v", got)
	}
	if b.Unbounded() != parent {
		t.Error("Unbounded is not the parent")
	}
	cancel()
	if err := b.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after the parent's cancel = %v, want Canceled", err)
	}
	mustClose(t, b.Done(), "Done not closed after the parent ended")
}

func TestBoundedTakesAnEarlierParentDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pd, _ := parent.Deadline()
	b := WithDeadline(parent, time.Now().Add(time.Hour))
	defer b.Stop()
	if d, ok := b.Deadline(); !ok || !d.Equal(pd) {
		t.Errorf("Deadline = %v, %v; want the parent's %v", d, ok, pd)
	}
}

func TestBoundedErrIsLatched(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	b := WithDeadline(parent, time.Now().Add(-time.Second)) // already past
	if err := b.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	cancel()
	b.Stop()
	if err := b.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after a later cancel = %v, want the first error, DeadlineExceeded", err)
	}
}

func TestBoundedStopEndsItWithoutATimer(t *testing.T) {
	b := WithDeadline(context.Background(), time.Now().Add(time.Hour))
	b.Stop()
	if err := b.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after Stop = %v, want Canceled", err)
	}
	if b.made.Load() {
		t.Error("Stop started a timer")
	}
	mustClose(t, b.Done(), "Done after Stop not closed") // a Done asked for after Stop is closed at once
}

// A child context and an AfterFunc register with the real context, not
// through a goroutine of their own, and hear the deadline.
func TestBoundedChildrenAndAfterFunc(t *testing.T) {
	before := runtime.NumGoroutine()
	b := WithDeadline(context.Background(), time.Now().Add(40*time.Millisecond))
	defer b.Stop()
	child, cancel := context.WithCancel(b)
	defer cancel()
	fired := make(chan struct{})
	stop := context.AfterFunc(b, func() { close(fired) })
	defer stop()
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines %d → %d: a child or AfterFunc watches through a goroutine", before, n)
	}
	mustClose(t, child.Done(), "child not ended by the deadline")
	if err := child.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("child Err = %v, want DeadlineExceeded", err)
	}
	mustClose(t, fired, "AfterFunc not run at the deadline")
}

// The point of Bounded: made, checked and stopped without ever asking
// for Done, it costs no allocation inside a larger value.
func TestBoundedCostsNothingUntilDone(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make([]Bounded, 101) // AllocsPerRun runs once more to warm up
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		b := &held[i]
		i++
		b.Init(parent, time.Now().Add(time.Minute))
		_, _ = b.Deadline()
		_ = b.Err()
		b.Stop()
	})
	if allocs != 0 {
		t.Errorf("allocations per bounded call = %v, want 0", allocs)
	}
}

type ctxKey struct{}

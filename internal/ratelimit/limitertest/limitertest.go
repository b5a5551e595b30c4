// Package limitertest is the contract every ratelimit.Limiter keeps, as
// one suite that each implementation runs (the in-process Local is the one
// there is). It runs on the wall clock, since a shared limiter's clock
// would be its store's.
package limitertest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/ratelimit"
)

// New makes the limiter under test for cfg (cfg.Now is unset).
type New func(t *testing.T, cfg ratelimit.Config) ratelimit.Limiter

// Run runs the suite against the limiters newLimiter makes. jitter is how
// much closer than the interval two releases may come: 0 for a limiter on
// this process's clock; for one on a shared store's, the spread of the
// round trips to it, which the headroom covers.
func Run(t *testing.T, newLimiter New, jitter time.Duration) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, New)
	}{
		{"RejectsPastBurst", rejectsPastBurst},
		{"KeysAreIndependent", keysAreIndependent},
		{"PauseHoldsEveryKey", pauseHoldsEveryKey},
		{"PauseBindsWaitingCalls", pauseBindsWaitingCalls},
		{"ReleasesAreSpacedByReleaseTime", func(t *testing.T, n New) { releasesAreSpaced(t, n, jitter) }},
		{"SentPushesTheNextSlot", sentPushesTheNextSlot},
		{"RetryAfterAnswerPauses", retryAfterAnswerPauses},
		{"QuotaHeadersPauseBeforeA429", quotaHeadersPause},
		{"AdaptiveCutsOncePerRound", adaptiveCutsOncePerRound},
		{"BackgroundYieldsToInteractive", backgroundYields},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newLimiter) })
	}
}

var ctx = context.Background()

func exceeded(t *testing.T, err error) *ratelimit.ExceededError {
	t.Helper()
	var ex *ratelimit.ExceededError
	if !errors.As(err, &ex) || !errors.Is(err, ratelimit.ErrExceeded) {
		t.Fatalf("err = %v, want an ExceededError", err)
	}
	return ex
}

func rejectsPastBurst(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 2})
	for i := 0; i < 2; i++ {
		if _, err := l.Wait(ctx, "", 0); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	_, err := l.Wait(ctx, "", 0)
	if ex := exceeded(t, err); ex.RetryAfter <= 0 || ex.RetryAfter > time.Second || ex.Paused {
		t.Errorf("RetryAfter = %v, paused %v; want in (0, 1s], not paused", ex.RetryAfter, ex.Paused)
	}
	if got := l.Remaining(""); got != 0 {
		t.Errorf("Remaining = %d, want 0", got)
	}
}

func keysAreIndependent(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1})
	if _, err := l.Wait(ctx, "tenant-a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Wait(ctx, "tenant-a", 0); err == nil {
		t.Error("tenant-a's second call allowed, want limited")
	}
	if _, err := l.Wait(ctx, "tenant-b", 0); err != nil {
		t.Errorf("tenant-b limited by tenant-a: %v", err)
	}
}

func pauseHoldsEveryKey(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{})
	l.Pause(time.Now().Add(time.Hour), ratelimit.PauseRetryAfter)
	l.Pause(time.Now().Add(time.Minute), ratelimit.PauseRetryAfter) // does not shorten it
	for _, key := range []string{"", "any"} {
		_, err := l.Wait(ctx, key, time.Second)
		if ex := exceeded(t, err); !ex.Paused || ex.RetryAfter < 59*time.Minute || ex.Reason != ratelimit.PauseRetryAfter {
			t.Errorf("key %q: %+v, want paused (retry-after) for about an hour", key, ex)
		}
	}
	if st := l.Status(); st.PausedFor < 59*time.Minute || st.PauseReason != ratelimit.PauseRetryAfter {
		t.Errorf("Status = %+v, want the pause", st)
	}
}

// waitAll queues n callers at once and returns their release times.
func waitAll(t *testing.T, l ratelimit.Limiter, n int) []time.Time {
	t.Helper()
	var mu sync.Mutex
	var out []time.Time
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := l.Wait(ctx, "", 5*time.Second)
			if err != nil {
				t.Errorf("Wait: %v", err)
				return
			}
			mu.Lock()
			out = append(out, s.At)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// Calls already waiting when a pause comes obey it, and leave at the rate
// once it ends: never more than the burst within one interval.
func pauseBindsWaitingCalls(t *testing.T, newLimiter New) {
	const interval = 50 * time.Millisecond
	l := newLimiter(t, ratelimit.Config{Rate: 20, Burst: 3})
	var pauseEnd, inForce atomic.Int64
	go func() {
		time.Sleep(20 * time.Millisecond) // the burst has left; the rest wait
		end := time.Now().Add(300 * time.Millisecond)
		pauseEnd.Store(end.UnixNano())
		l.Pause(end, ratelimit.PauseRetryAfter)
		// In force once Pause returns: a call may leave while a shared
		// limiter writes the pause.
		inForce.Store(time.Now().UnixNano())
	}()
	times := waitAll(t, l, 8)
	end, begun := time.Unix(0, pauseEnd.Load()), time.Unix(0, inForce.Load())
	var after []time.Time
	for _, at := range times {
		if at.Before(end) && at.After(begun) {
			t.Errorf("a call left %s into the pause", at.Sub(begun))
		}
		if !at.Before(end) {
			after = append(after, at)
		}
	}
	if len(after) < 5 {
		t.Fatalf("%d calls left after the pause, want the 5 held beyond the burst", len(after))
	}
	for i := range after {
		n := 0
		for _, b := range after[i:] {
			if b.Sub(after[i]) < interval {
				n++
			}
		}
		if n > 2 {
			t.Errorf("%d calls left within %s after the pause, want the held calls paced", n, interval)
		}
	}
	if span := after[len(after)-1].Sub(after[0]); span < time.Duration(len(after)-2)*interval {
		t.Errorf("%d held calls left within %s, want them spread at the rate", len(after), span)
	}
}

// With burst 1, however the callers are scheduled, no two are released
// closer than the interval.
func releasesAreSpaced(t *testing.T, newLimiter New, jitter time.Duration) {
	l := newLimiter(t, ratelimit.Config{Rate: 50, Burst: 1})
	times := waitAll(t, l, 20)
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < 20*time.Millisecond-jitter {
			t.Errorf("two calls released %s apart at 50/s, want at least 20ms (less %s of jitter)", d, jitter)
		}
	}
	if span := times[len(times)-1].Sub(times[0]); span < time.Duration(len(times)-1)*20*time.Millisecond-jitter {
		t.Errorf("%d calls released within %s at 50/s, want at least %s", len(times), span, time.Duration(len(times)-1)*20*time.Millisecond)
	}
}

// A call written late pushes the next slot to an interval after the write.
func sentPushesTheNextSlot(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 1})
	s, err := l.Wait(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	wrote := s.At.Add(80 * time.Millisecond) // as if the write took 80ms
	l.Sent("", s, wrote)
	next, err := l.Wait(ctx, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if next.At.Before(wrote.Add(100 * time.Millisecond)) {
		t.Errorf("next call released %s after the late write, want at least the 100ms interval", next.At.Sub(wrote))
	}
}

func retryAfterAnswerPauses(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{Rate: 100, Burst: 5})
	s, err := l.Wait(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Observe("", s, ratelimit.Answer{Status: 429, Header: http.Header{"Retry-After": {"3600"}}, Sent: s.At})
	_, err = l.Wait(ctx, "", time.Second)
	if ex := exceeded(t, err); !ex.Paused || ex.Reason != ratelimit.PauseRetryAfter {
		t.Errorf("after a 429 with Retry-After: %+v, want paused (retry-after)", ex)
	}
}

// The vendor's stated quota is spent by the calls released after the one
// whose answer stated it; at 0 the upstream pauses until the reset.
func quotaHeadersPause(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{})
	first, _ := l.Wait(ctx, "", 0)
	if _, err := l.Wait(ctx, "", 0); err != nil { // in flight while first is answered
		t.Fatal(err)
	}
	l.Observe("", first, ratelimit.Answer{Status: 200, Header: http.Header{"X-Ratelimit-Remaining": {"3"}, "X-Ratelimit-Reset": {"3600"}}})
	if got := l.Status().QuotaRemaining; got != 2 {
		t.Fatalf("quota remaining %d, want 3 stated less the call released after", got)
	}
	for i := 0; i < 2; i++ {
		if _, err := l.Wait(ctx, "", 0); err != nil {
			t.Fatalf("call %d of the 2 left: %v", i+1, err)
		}
	}
	_, err := l.Wait(ctx, "", time.Second)
	if ex := exceeded(t, err); !ex.Paused || ex.Reason != ratelimit.PauseQuota || ex.RetryAfter < 59*time.Minute {
		t.Errorf("call past the quota: %+v, want paused (quota) until the reset", ex)
	}
}

// A 429 cuts the adaptive rate once: 429s for calls released before the
// cut are old news.
func adaptiveCutsOncePerRound(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{Rate: 40, Burst: 1, Adaptive: true})
	a, _ := l.Wait(ctx, "", time.Second)
	b, _ := l.Wait(ctx, "", time.Second)
	l.Observe("", a, ratelimit.Answer{Status: 429})
	cut := l.Status().Effective
	if cut >= 40 || cut <= 0 {
		t.Fatalf("effective rate %v after a 429, want below 40", cut)
	}
	l.Observe("", b, ratelimit.Answer{Status: 429})
	if got := l.Status().Effective; got != cut {
		t.Errorf("a 429 for a call released before the cut cut again: %v -> %v", cut, got)
	}
	c, _ := l.Wait(ctx, "", time.Second)
	l.Observe("", c, ratelimit.Answer{Status: 429})
	if got := l.Status().Effective; got >= cut {
		t.Errorf("a 429 for a call released after the cut: %v, want below %v", got, cut)
	}
}

// Interactive callers queued keep background callers out; once they stop,
// background callers get the slots.
func backgroundYields(t *testing.T, newLimiter New) {
	l := newLimiter(t, ratelimit.Config{Rate: 50, Burst: 1})
	stop := make(chan struct{})
	var fg atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Wait(ctx, "", time.Second); err == nil {
					fg.Add(1)
				}
			}
		}()
	}
	bg := 0
	for i := 0; i < 20; i++ { // about a second of 50ms tries
		if _, err := l.WaitBackground(ctx, "", 50*time.Millisecond); err == nil {
			bg++
		}
	}
	close(stop)
	wg.Wait()
	if bg > 1 || fg.Load() < 10 {
		t.Errorf("while interactive callers kept the bucket busy: %d background slots, %d interactive; want background shut out", bg, fg.Load())
	}
	got := 0
	for i := 0; i < 5; i++ {
		if _, err := l.WaitBackground(ctx, "", time.Second); err == nil {
			got++
		}
	}
	if got != 5 {
		t.Errorf("an idle bucket gave the background %d of 5 slots", got)
	}
}

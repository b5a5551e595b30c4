package ratelimit

import (
	"context"
	"math"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// The adaptive rate drops on a 429, once per round of calls sent at the
// old rate, climbs back while calls succeed and the pace holds the app
// back, and never passes the configured rate. In virtual time.
func TestAdaptiveRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(Config{Rate: 40, Burst: 1, Adaptive: true})
		ctx := context.Background()
		a, _ := l.Wait(ctx, "", time.Second)
		time.Sleep(25 * time.Millisecond)
		b, _ := l.Wait(ctx, "", time.Second)
		l.Observe("", a, Answer{Status: 429, Header: nil})
		cut := l.Status().Effective
		if cut >= 40 || cut <= 0 {
			t.Fatalf("effective rate %v after a 429, want below 40", cut)
		}
		l.Observe("", b, Answer{Status: 429, Header: nil}) // sent before the cut: already answered for
		if got := l.Status().Effective; got != cut {
			t.Errorf("a 429 for a call sent at the old rate cut again: %v -> %v", cut, got)
		}
		// The app asks twice as often as the cut rate allows, for ten
		// seconds: the pace refuses some, the rest succeed, and the rate
		// climbs back.
		for i := 0; i < 400; i++ {
			time.Sleep(25 * time.Millisecond)
			if s, err := l.Wait(ctx, "", 0); err == nil {
				l.Observe("", s, Answer{Status: 200, Header: nil})
			}
		}
		if got := l.Status().Effective; got <= cut || got > 40 {
			t.Errorf("effective rate %v after ten seconds of successes with calls refused by the pace, want back above %v and at most 40", got, cut)
		}
	})
}

// While the app asks for less than the rate allows, successes say nothing
// of the vendor's limit (RFC 7661's reasoning for TCP): the rate stays.
func TestAdaptiveRateHoldsWithoutDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(Config{Rate: 40, Burst: 1, Adaptive: true})
		ctx := context.Background()
		_, _ = l.Wait(ctx, "", time.Second)
		held, _ := l.Wait(ctx, "", time.Second) // waits for the pace
		l.Observe("", held, Answer{Status: 429})
		cut := l.Status().Effective
		for i := 0; i < 100; i++ {
			time.Sleep(time.Second)
			if s, err := l.Wait(ctx, "", 0); err == nil {
				l.Observe("", s, Answer{Status: 200})
			}
		}
		if got := l.Status().Effective; got != cut || cut >= 40 {
			t.Errorf("effective rate %v after successes one a second, want it left at the cut %v", got, cut)
		}
	})
}

func TestParseQuota(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name string
		h    map[string]string
		want Quota
		ok   bool
	}{
		{"ietf structured", map[string]string{"RateLimit": `"default";r=5;t=30`}, Quota{5, 30 * time.Second}, true},
		{"ietf two policies, least left wins", map[string]string{"RateLimit": `"burst";r=9;t=1, "day";r=0;t=3600`}, Quota{0, time.Hour}, true},
		{"ietf old dictionary", map[string]string{"RateLimit": "limit=10, remaining=0, reset=4"}, Quota{0, 4 * time.Second}, true},
		{"ietf separate fields", map[string]string{"RateLimit-Remaining": "7", "RateLimit-Reset": "2"}, Quota{7, 2 * time.Second}, true},
		{"x-ratelimit seconds", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"}, Quota{0, 12 * time.Second}, true},
		{"x-ratelimit epoch", map[string]string{"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "1767323105"}, Quota{3, time.Minute}, true},
		{"llm form", map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, Quota{0, 6 * time.Minute}, true},
		{"llm form, milliseconds", map[string]string{"x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "20ms"}, Quota{1, 20 * time.Millisecond}, true},
		{"remaining without reset", map[string]string{"X-RateLimit-Remaining": "0"}, Quota{}, false},
		{"negative remaining", map[string]string{"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "1"}, Quota{}, false},
		{"garbage", map[string]string{"RateLimit": "((", "X-RateLimit-Remaining": "x"}, Quota{}, false},
		{"none", nil, Quota{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			got, ok := ParseQuota(h, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseQuota = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseQuota(f *testing.F) {
	f.Add(`"default";r=0;t=7`, "3", "1767323105", "1s")
	f.Add("limit=1, remaining=0, reset=NaN", "-1", "1e400", "6m0s")
	f.Add(`"a";r=1;t=1.5, "b";r=0`, "0", "", "-5s")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, rl, remaining, reset, llmReset string) {
		h := http.Header{}
		h.Set("RateLimit", rl)
		h.Set("X-RateLimit-Remaining", remaining)
		h.Set("X-RateLimit-Reset", reset)
		h.Set("X-Ratelimit-Remaining-Requests", remaining)
		h.Set("X-Ratelimit-Reset-Requests", llmReset)
		q, ok := ParseQuota(h, now)
		if ok && (q.Remaining < 0 || q.Reset < 0 || q.Reset > MaxPause) {
			t.Fatalf("ParseQuota = %+v", q)
		}
		if !ok && q != (Quota{}) {
			t.Fatalf("ParseQuota failed but returned %+v", q)
		}
	})
}

// An unconfigured adaptive limiter that is paused takes twice the rate
// calls were leaving at, so that the calls the pause held leave spaced,
// not all at once, and still drain: a pause without a 429 never seeds a
// rate at or below the demand (docs/ratelimit.md, "Pauses bind every
// call").
func TestPauseSeedsAnUnlimitedRate(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLocal(Config{Adaptive: true, Now: clk.now})
	for i := 0; i < 11; i++ { // ten intervals of 100ms: 10 calls a second
		if _, err := l.Wait(context.Background(), "", 0); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(100 * time.Millisecond)
	}
	if got := l.Status().Effective; got != 0 {
		t.Fatalf("effective rate %v before any pause, want 0 (unlimited)", got)
	}
	l.Pause(clk.t.Add(time.Second), PauseRetryAfter)
	if got := l.Status().Effective; got < 19 || got > 21 {
		t.Errorf("effective rate %v after the pause, want twice the 10/s calls were leaving at, so that the calls it held drain", got)
	}
}

// Trust, item 5: a hostile Retry-After or reset (an overflow, a date in
// year 9999, a negative or garbage value, an hour-long duration) is
// treated one way: a pause capped at MaxPause, or none, and never a
// lasting change of the rate. On a 429 the rate is judged once, as any
// 429; after the pause, with the app asking again, it climbs back to
// what it was. On a 200, a hostile quota changes no rate at all.
func TestHostileHeadersPauseAtMostAnHourAndChangeNoRateForGood(t *testing.T) {
	hostile := []http.Header{
		{"Retry-After": {"99999999999999999999999"}},
		{"Retry-After": {"Fri, 31 Dec 9999 23:59:59 GMT"}},
		{"Retry-After": {"-5"}},
		{"Retry-After": {"soon"}},
		{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"99999999999999"}},
		{"X-Ratelimit-Remaining": {"-1"}, "X-Ratelimit-Reset": {"1e308"}},
		{"X-Ratelimit-Remaining-Requests": {"0"}, "X-Ratelimit-Reset-Requests": {"2562047h"}},
		{"Ratelimit": {`"default";r=0;t=99999999999`}},
	}
	for _, status := range []int{http.StatusTooManyRequests, http.StatusOK} {
		for _, h := range hostile {
			synctest.Test(t, func(t *testing.T) {
				l := NewLocal(Config{Rate: 40, Burst: 1, Adaptive: true})
				ctx := context.Background()
				before := l.Status().Effective
				s, _ := l.Wait(ctx, "", time.Second)
				l.Observe("", s, Answer{Status: status, Header: h})
				if p := l.Status().PausedFor; p > MaxPause {
					t.Errorf("%d with %v: paused %s, want at most %s", status, h, p, MaxPause)
				}
				if status == http.StatusOK && l.Status().Effective != before {
					t.Errorf("200 with %v: the rate went from %v to %v, want unchanged", h, before, l.Status().Effective)
				}
				time.Sleep(MaxPause + time.Second)
				for range 400 { // the app asks at 100/s for four seconds, past the pause
					time.Sleep(10 * time.Millisecond)
					if s, err := l.Wait(ctx, "", 0); err == nil {
						l.Observe("", s, Answer{Status: http.StatusOK})
					}
				}
				if got := l.Status(); got.Effective < 0.9*before || got.PausedFor > 0 {
					t.Errorf("%d with %v: an hour and four seconds later, rate %v paused %s; want back near %v, not paused", status, h, got.Effective, got.PausedFor, before)
				}
			})
		}
	}
}

// A 429 that ends the creep leaves the rate at the last one proven when
// a 429 costs one call; when it paused every call (Retry-After), two
// creep steps under the rate that drew it, and the creep does not climb
// back, so that a call the network or the vendor's machine delays by a
// millisecond at 20/s does not cost another second of the whole quota.
func TestAdaptiveSettlesFurtherUnderPausing429s(t *testing.T) {
	for _, tc := range []struct {
		paused bool
		want   float64
	}{
		{false, 20},
		{true, 20.4 / adaptiveSettled / adaptiveSettled},
	} {
		now := time.Unix(1_000_000, 0)
		// Converged and creeping: 20/s proven, 20.4/s being tried, the
		// bisection's 429 at 20.8/s long past.
		a := newAdaptiveRate(0)
		a.rate, a.good, a.bad, a.badAt, a.badFor, a.costly = 20.4, 20, 20.8, now.Add(-20*time.Second), adaptiveBelieve, tc.paused
		a.round, a.cutAt = now, now.Add(-20*time.Second)
		a.throttled(now, now.Add(-10*time.Millisecond), 20.4, true, tc.paused)
		if math.Abs(a.rate-tc.want) > 1e-9 {
			t.Errorf("paused %v: rate %.3f after the creep's 429, want %.3f", tc.paused, a.rate, tc.want)
		}
		// 40 s of proven rounds, the app asking for more: the rate stays.
		for range 100 {
			now = now.Add(400 * time.Millisecond)
			a.pressed, a.oks, a.lastOK, a.asked = true, adaptiveProofCalls, true, 100
			a.step(now)
		}
		if math.Abs(a.rate-tc.want) > 1e-9 {
			t.Errorf("paused %v: rate %.3f after 40 s of proven rounds, want it left at %.3f", tc.paused, a.rate, tc.want)
		}
	}
}

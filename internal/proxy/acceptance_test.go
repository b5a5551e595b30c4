package proxy_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// Acceptance 2: the upstream answers 503 to everything while the app sends
// 200 req/s for 10s; the breaker opens, fails fast with only half-open
// probes reaching the upstream, and closes once the upstream heals.
func TestOutageOpensBreakerAndHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole outage and its healing in real time (about 14 s): the full run runs it")
	}
	t.Parallel()
	const halfOpenCalls = 2
	s := newStack(t, "", fmt.Sprintf(`    retry: {max_attempts: 1}
    breaker:
      window: 2s
      min_calls: 20
      failure_rate: 50
      open_duration: 1s
      half_open_calls: %d
`, halfOpenCalls))
	s.fake.Set(fakeapi.Behavior{Down: true})

	start := time.Now()
	var watch breakerWatch
	var fastFails, badFastFails atomic.Int64
	drive(200, 10*time.Second, func(i int, sent time.Time) {
		r := s.get("/api/v1/status")
		if r.header.Get("Seawall-Error") != "circuit-open" {
			return
		}
		fastFails.Add(1)
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != 503 || err != nil || ra < 1 || r.header.Get("Content-Type") != "application/problem+json" {
			badFastFails.Add(1)
		}
		watch.saw(sent)
	})
	openedAt := watch.opened(t, start, 2*time.Second)
	if n := badFastFails.Load(); n > 0 {
		t.Errorf("%d fail-fast answers were not 503 problem+json with Retry-After", n)
	}
	probes := len(s.probes(openedAt))
	halfOpens := int(s.metric("breaker_transitions_total", "state=half_open"))
	if probes > halfOpens*halfOpenCalls {
		t.Errorf("upstream saw %d calls while open, want at most %d half-open episodes x %d probes", probes, halfOpens, halfOpenCalls)
	}
	t.Logf("opened after %s; %d fail-fast answers; %d calls reached the upstream while open over %d half-open episodes",
		openedAt.Sub(start).Round(time.Millisecond), fastFails.Load(), probes, halfOpens)

	s.fake.Set(fakeapi.Behavior{})
	var lastFailure atomic.Int64
	drive(200, 4*time.Second, func(i int, _ time.Time) {
		if s.get("/api/v1/status").status != 200 {
			lastFailure.Store(int64(i))
		}
	})
	if st := s.ups.Get("api").Breaker.State().String(); st != "closed" {
		t.Fatalf("breaker %s after the upstream healed, want closed", st)
	}
	if i := lastFailure.Load(); i >= 400 {
		t.Errorf("request %d of 800 still failed, want all from 2s after healing to succeed", i)
	}
}

// Acceptance 3: with a limit of 50/s and 200 req/s offered for 10s, the
// upstream never sees more than 50 + burst calls in any second.
func TestRateFidelity(t *testing.T) {
	t.Parallel()
	const burst = 5
	for _, mode := range []string{"reject", "wait"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, "", fmt.Sprintf(`    rate_limit: {rate: 50/s, burst: %d, on_limit: %s, max_wait: 300ms}
`, burst, mode))
			var ok, limited, badLimited atomic.Int64
			drive(200, 10*time.Second, func(int, time.Time) {
				r := s.get("/api/v1/quote")
				switch r.status {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
					if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Policy") == "" || r.header.Get("RateLimit") == "" {
						badLimited.Add(1)
					}
				}
			})
			if max := fakeapi.MaxInWindow(s.fake.Calls(), time.Second); max > 50+burst {
				t.Errorf("upstream saw %d calls in one second, want <= %d", max, 50+burst)
			}
			if limited.Load() == 0 || badLimited.Load() > 0 {
				t.Errorf("%d answered 429, %d of them without Retry-After and RateLimit headers", limited.Load(), badLimited.Load())
			}
			if mode == "wait" && s.metric("ratelimit_wait_seconds") == 0 {
				t.Error("no limiter waits recorded in wait mode")
			}
			// The bucket allows 50/s plus the burst: over 10s the upstream
			// should get close to that, not far below.
			if ok.Load() < 450 || int(ok.Load()) != s.fake.Count() {
				t.Errorf("%d requests succeeded and %d reached the upstream, want about 505 of each", ok.Load(), s.fake.Count())
			}
			t.Logf("%s: %d ok, %d limited, busiest second %d", mode, ok.Load(), limited.Load(), fakeapi.MaxInWindow(s.fake.Calls(), time.Second))
		})
	}
}

// Acceptance 4: an upstream 429 with Retry-After: 2 pauses the upstream:
// no call reaches it for the next 2 seconds.
func TestUpstreamRetryAfterPausesUpstream(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", `    retry: {max_attempts: 1}
    rate_limit: {on_limit: wait, max_wait: 100ms}
`)
	s.fake.Set(fakeapi.Behavior{Status: 429, Headers: map[string]string{"Retry-After": "2"}})
	if r := s.get("/api/v1/send"); r.status != 429 || r.header.Get("Seawall-Source") != "upstream" {
		t.Fatalf("first call: %d from %q, want the upstream's 429", r.status, r.header.Get("Seawall-Source"))
	}
	s.fake.Set(fakeapi.Behavior{})
	var paused atomic.Int64
	drive(50, 3*time.Second, func(int, time.Time) {
		r := s.get("/api/v1/send")
		if r.status == 429 && r.header.Get("Seawall-Error") == "upstream-paused" && r.header.Get("Retry-After") != "" {
			paused.Add(1)
		}
	})
	calls := s.fake.Calls()
	first := calls[0].At
	for _, c := range calls[1:] {
		if d := c.At.Sub(first); d < 2*time.Second {
			t.Errorf("upstream called %s after its Retry-After: 2", d.Round(time.Millisecond))
		}
	}
	if len(calls) < 2 || paused.Load() == 0 {
		t.Errorf("%d calls after the pause and %d paused answers, want both > 0", len(calls)-1, paused.Load())
	}
}

// While the breaker is open a call fails fast before the rate limiter: the
// app hears circuit-open, not a 429 for quota that calls never made spent.
func TestOpenBreakerSpendsNoQuota(t *testing.T) {
	s := newStack(t, "", `    retry: {max_attempts: 1}
    rate_limit: {rate: 1/min, burst: 3, on_limit: reject}
    breaker: {min_calls: 1, failure_rate: 50, open_duration: 1h, max_open_duration: 1h}
`)
	s.fake.Set(fakeapi.Behavior{Down: true})
	if r := s.get("/api/v1/x"); r.status != 503 || r.header.Get("Seawall-Source") != "upstream" {
		t.Fatalf("first call: %d from %q, want the upstream's 503", r.status, r.header.Get("Seawall-Source"))
	}
	for i := 0; i < 10; i++ {
		r := s.get("/api/v1/x")
		if r.status != 503 || r.header.Get("Seawall-Error") != "circuit-open" {
			t.Fatalf("call %d with the breaker open: %d %s, want 503 circuit-open", i+2, r.status, r.header.Get("Seawall-Error"))
		}
	}
	if n := s.fake.Count(); n != 1 {
		t.Errorf("upstream got %d calls, want 1", n)
	}
}

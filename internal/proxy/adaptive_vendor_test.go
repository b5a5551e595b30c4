package proxy_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/vendortest"
)

// Trust, acceptance 4, against an HTTP vendor: with room for 50 calls a
// second (a leaky bucket), it answers 429 to 80% of calls for 20 s,
// whatever their pace, then heals; the app sends 20 req/s throughout.
// Counted at the vendor, every second from 5 s after it heals serves at
// least 18 of the app's calls, with no rate configured and with one, and
// the breaker never opens (a 429 is a rate signal). Before, the storm
// left the learned rate at its 0.2/s floor for minutes.
func TestAdaptiveVendorRecoversAfterA429Storm(t *testing.T) {
	vendortest.Quiet(t)
	t.Parallel()
	for name, rl := range map[string]string{"no-rate": "", "rate-50": "    rate_limit: {rate: 50/s}\n"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, "", rl+"    retry: {max_attempts: 1}\n")
			healthy := fakeapi.Behavior{LeakyRate: 50}
			s.fake.Set(healthy)
			start := time.Now()
			go func() {
				time.Sleep(5 * time.Second)
				s.fake.Set(fakeapi.Behavior{LeakyRate: 50, ErrorRate: 0.8, ErrorStatus: http.StatusTooManyRequests})
				time.Sleep(20 * time.Second)
				s.fake.Set(healthy)
			}()
			drive(20, 35*time.Second, func(int, time.Time) { s.get("/api/v1/quote") })
			healed := start.Add(25 * time.Second)
			perSecond := make([]int, 5)
			for _, c := range s.fake.Calls() {
				if c.Status == http.StatusOK {
					if i := int(c.At.Sub(healed.Add(5*time.Second)) / time.Second); c.At.After(healed.Add(5*time.Second)) && i < len(perSecond) {
						perSecond[i]++
					}
				}
			}
			t.Logf("%s: served each second from 5 s after healing: %v; effective rate %.1f/s", name, perSecond, s.ups.Get("api").Limiter.Status().Effective)
			for i, n := range perSecond {
				if n < 18 {
					t.Errorf("second %d after healing served %d calls, want >= 18", 5+i, n)
				}
			}
			if opened := s.metric("breaker_transitions_total", "state=open"); opened != 0 {
				t.Errorf("the breaker opened %v times on 429s, want never", opened)
			}
		})
	}
}

// Trust, acceptance 5, against an HTTP vendor: a quota of 40 calls a
// second stated in X-RateLimit-* on every answer, the app at half of it
// with no rate configured. Once another client of the account spends a
// window (the app's next call is refused: remaining 0), and once the
// vendor pauses the account for 3 s on a 200 with no 429 at all
// (remaining 0, reset 3). Ten seconds after each, the app's median latency
// is back under 50 ms: the calls the pause held drained. Before, the pause
// pinned the rate at the app's own and every later call waited ~1 s.
func TestAdaptiveVendorQuotaPauseAndForeign429(t *testing.T) {
	vendortest.Quiet(t)
	t.Parallel()
	s := newStack(t, "", "    retry: {max_attempts: 1}\n")
	quota := fakeapi.Behavior{Window: &fakeapi.Window{Limit: 40, Every: fakeapi.Duration(time.Second)}}
	s.fake.Set(quota)
	start := time.Now()
	go func() {
		time.Sleep(5 * time.Second)
		// Another client of the account spends what is left of a window.
		for range 40 {
			if resp, err := http.Get(s.up.URL + "/v1/other-client"); err == nil {
				_ = resp.Body.Close()
			}
		}
		time.Sleep(15 * time.Second)
		// The vendor holds the account for 3 s, saying so on a 200.
		s.fake.Set(fakeapi.Behavior{Headers: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"}})
		time.Sleep(100 * time.Millisecond)
		s.fake.Set(quota)
	}()
	var mu sync.Mutex
	took := map[int][]time.Duration{} // second since start -> latencies
	drive(20, 40*time.Second, func(_ int, sent time.Time) {
		s.get("/api/v1/quote")
		mu.Lock()
		took[int(sent.Sub(start)/time.Second)] = append(took[int(sent.Sub(start)/time.Second)], time.Since(sent))
		mu.Unlock()
	})
	for _, from := range []int{15, 30} { // 10 s after the foreign drain, and after the pause began
		var l []time.Duration
		for sec := from; sec < from+5; sec++ {
			l = append(l, took[sec]...)
		}
		slices.Sort(l)
		p50 := l[len(l)/2]
		t.Logf("from second %d: p50 %s over %d calls", from, p50.Round(time.Millisecond), len(l))
		if p50 >= 50*time.Millisecond {
			t.Errorf("from second %d: p50 latency %s, want < 50ms", from, p50.Round(time.Millisecond))
		}
	}
	if paused := s.metric("upstream_pauses_total"); paused < 1 {
		t.Errorf("%v pauses, want the vendor's quota pauses obeyed", paused)
	}
}

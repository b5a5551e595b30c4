package cluster_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
)

// adaptive is a replica's adaptive global limiter of upstream "api",
// configured at rate calls a second.
func adaptive(t *testing.T, url string, rate float64) *ratelimit.Global {
	t.Helper()
	return ratelimit.NewGlobal(ratelimit.GlobalConfig{Config: ratelimit.Config{Rate: rate, Burst: 1, Adaptive: true}}, open(t, url, time.Second).Upstream("api"))
}

// Several replicas, item 3: the adaptive rate one replica learns from a
// vendor's 429 and the quota the vendor states to it are every replica's
// within 200 ms, and Redis keeps them for a replica that starts later.
// Before, each replica learned its own, and the others went on at the
// rate the vendor had just refused.
func TestLearnedRateAndStatedQuotaAreShared(t *testing.T) {
	srv := testredis.Start(t)
	a, b := adaptive(t, srv.URL(), 100), adaptive(t, srv.URL(), 100)
	ctx := context.Background()
	var slot ratelimit.Slot
	var err error
	for range 20 { // calls that leave at the configured pace: the 429 blames it
		if slot, err = a.Wait(ctx, "", time.Second); err != nil {
			t.Fatal(err)
		}
		a.Observe("", slot, ratelimit.Answer{Status: http.StatusOK, Sent: time.Now()})
	}
	before := b.Status().Effective
	a.Observe("", slot, ratelimit.Answer{Status: http.StatusTooManyRequests, Sent: time.Now()})
	cut := a.Status().Effective
	if cut >= before {
		t.Fatalf("the 429 did not cut replica a's rate: %.1f/s, was %.1f/s", cut, before)
	}
	took, ok := testwait.Within(time.Second, func() bool { return b.Status().Effective == cut })
	if !ok || took > 200*time.Millisecond {
		t.Errorf("replica b paces at %.1f/s %s after a's cut to %.1f/s (was %.1f/s), want a's rate within 200 ms", b.Status().Effective, took, cut, before)
	}

	h := http.Header{"X-Ratelimit-Remaining": {"7"}, "X-Ratelimit-Reset": {"30"}}
	if slot, err = a.Wait(ctx, "", time.Second); err != nil {
		t.Fatal(err)
	}
	a.Observe("", slot, ratelimit.Answer{Status: http.StatusOK, Header: h, Sent: time.Now()})
	took, ok = testwait.Within(time.Second, func() bool { return b.Status().QuotaRemaining == 7 })
	if !ok || took > 200*time.Millisecond {
		t.Errorf("replica b sees %d of the vendor's quota left %s after a read 7, want 7 within 200 ms", b.Status().QuotaRemaining, took)
	}

	late := adaptive(t, srv.URL(), 100)
	if _, ok := testwait.Within(time.Second, func() bool { return late.Status().Effective == cut && late.Status().QuotaRemaining == 7 }); !ok {
		t.Errorf("a replica started later paces at %.1f/s with %d of the quota left, want the kept %.1f/s and 7",
			late.Status().Effective, late.Status().QuotaRemaining, cut)
	}
}

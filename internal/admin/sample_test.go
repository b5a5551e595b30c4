package admin

import (
	"math"
	"testing"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/upstream"
)

func TestQuantileInterpolatesWithinItsBucket(t *testing.T) {
	bounds := []float64{.001, .01, .1, math.Inf(1)}
	for _, tc := range []struct {
		q          float64
		cumulative []float64
		want       float64
	}{
		{0.5, []float64{0, 50, 100, 100}, .01},
		{0.99, []float64{0, 50, 100, 100}, .01 + .09*49/50},
		{0.5, []float64{100, 100, 100, 100}, .0005},
		{0.99, []float64{0, 0, 90, 100}, .1}, // in +Inf: the highest finite bound
		{0.5, []float64{0, 0, 0, 0}, 0},
	} {
		if got := quantile(tc.q, bounds, tc.cumulative); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.q, tc.cumulative, got, tc.want)
		}
	}
}

func TestTrafficCountsFromZeroAfterACounterReset(t *testing.T) {
	prev := newTally()
	prev.requests, prev.answers["2xx"] = 100, 100
	cur := newTally()
	cur.requests, cur.answers["2xx"], cur.answers["5xx"] = 10, 8, 2 // removed and added again
	tr := cur.since(prev, 2)
	if tr.Rate != 5 || tr.Answers["2xx"] != 4 || tr.Answers["5xx"] != 1 {
		t.Fatalf("traffic %+v, want 5/s: 4/s 2xx, 1/s 5xx", tr)
	}
	if f := tr.failing(); f != 0.2 {
		t.Fatalf("failing %v, want 0.2", f)
	}
}

func TestRoundKeepsThreeFigures(t *testing.T) {
	for in, want := range map[float64]float64{123456: 123000, 0.012345: 0.0123, 1.5: 1.5, 0: 0, math.NaN(): 0} {
		if got := round(in); got != want {
			t.Errorf("round(%v) = %v, want %v", in, got, want)
		}
	}
}

// The health word and its reasons are what the page sorts and marks by.
func TestJudge(t *testing.T) {
	ok := Card{Status: upstream.Status{Breaker: breaker.Closed.String()}}
	if h, why := judge(ok); h != "ok" || why != nil {
		t.Fatalf("a closed breaker and nothing else: %s %v", h, why)
	}
	open := ok
	open.Breaker = breaker.Open.String()
	open.PausedFor = 4
	open.RateLimit.PauseReason = "Retry-After"
	if h, why := judge(open); h != "down" || len(why) != 2 || why[0] != "breaker open" || why[1] != "paused 4s (Retry-After)" {
		t.Fatalf("open and paused: %s %q", h, why)
	}
	iso := ok
	iso.Endpoints = []endpoint.Report{{State: endpoint.Healthy}, {State: endpoint.Isolated}}
	if h, why := judge(iso); h != "degraded" || why[0] != "1 of 2 endpoints isolated" {
		t.Fatalf("one endpoint isolated: %s %q", h, why)
	}
	iso.Endpoints[0].State = endpoint.Probing
	if h, _ := judge(iso); h != "down" {
		t.Fatalf("every endpoint isolated or probing: %s, want down", h)
	}
}

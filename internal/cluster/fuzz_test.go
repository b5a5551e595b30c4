package cluster

import (
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/ratelimit"
)

// FuzzPublished: whatever is published on the deployment's channel, a
// replica never panics, applies a pause of at most a day, and tells its
// limiter only a signal it can use: a finite rate above 0, or a quota
// with calls left (never below 0) and a reset ahead.
func FuzzPublished(f *testing.F) {
	for _, s := range []string{"api 5000000", "rate other api 12.5 25 3000000", "quota other api 7 30000000",
		"rate other api NaN 0 0", "rate other api +Inf 0 0", "quota other api -1 10", "api -5", "", "rate", "quota other api 1 99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		c := &Cluster{log: slog.New(slog.NewTextHandler(io.Discard, nil)), self: Replica{ID: "self"},
			paused: map[string]time.Time{}, hear: map[string]func(ratelimit.Signal){}}
		var got []ratelimit.Signal
		c.hear["api"] = func(s ratelimit.Signal) { got = append(got, s) }
		now := time.Now()
		c.heard(msg, now)
		for name, until := range c.paused {
			if until.Sub(now) > 24*time.Hour || until.Before(now) {
				t.Fatalf("%q paused %s until %v", msg, name, until)
			}
		}
		for _, s := range got {
			rate := s.Rate > 0 && !math.IsInf(s.Rate, 0) && s.Bad >= 0 && !math.IsInf(s.Bad, 0) && s.BadFor >= 0
			quota := s.Reset > 0 && s.Remaining >= 0
			if !rate && !quota {
				t.Fatalf("%q told the limiter %+v", msg, s)
			}
		}
	})
}

// FuzzCountHash: a count hash's fields, whatever another program wrote
// there, are read as counts or left out, never a panic.
func FuzzCountHash(f *testing.F) {
	f.Add("r:abc", "12", "total", "x")
	f.Add("r:", "-3", "r:d", "99999999999999999999")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		res := []any{int64(1), int64(2), int64(3), []any{k1, v1, k2, v2}, []any{k1, v1}}
		c, ok := readCounted(res, true)
		if !ok {
			t.Fatalf("the script's answer shape was not read: %v", res)
		}
		for id, n := range c.Day.Replicas {
			if n == 0 || "r:"+id != k1 && "r:"+id != k2 {
				t.Fatalf("part %q=%d read from %v", id, n, res)
			}
		}
		if _, ok := readCounted([]any{"x", int64(-1)}, false); ok {
			t.Fatal("a short answer was read as a count")
		}
	})
}

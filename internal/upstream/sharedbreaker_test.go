package upstream

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
)

// replicaBreaker is one replica's breaker of upstream "api", linked to the
// others' through the Redis at url, running until the test ends.
func replicaBreaker(t *testing.T, url string) *breaker.Breaker {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rc := &config.Redis{URL: config.NewSecret(url), KeyPrefix: "t", Timeout: config.Duration(time.Second), OnFailure: config.RedisOnFailureLocal}
	cl, err := cluster.Open(rc, cluster.Replica{Version: "test"}, quiet, cluster.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var sb *sharedBreaker
	b := breaker.New(breaker.Config{Window: 10 * time.Second, MinCalls: 5, FailureRate: 50, SlowCallRate: 100, OpenDuration: time.Second, HalfOpenCalls: 1,
		OnStateChange: func(tr breaker.Transition) {
			if sb != nil {
				sb.changed(tr)
			}
		}})
	sb = newSharedBreaker(b, cl.Upstream("api"), quiet)
	ctx, cancel := context.WithCancel(context.Background())
	g := routine.New(quiet)
	done := make(chan struct{})
	g.Go("cluster", func() { defer close(done); cl.Run(ctx, g) })
	sb.start(g, "api")
	t.Cleanup(func() { sb.close(); cancel(); <-done })
	return b
}

// calls makes n calls through b with outcome o; refused ones are not made.
func calls(b *breaker.Breaker, n int, o breaker.Outcome) (made int) {
	for range n {
		p, err := b.Allow()
		if err != nil {
			continue
		}
		p.Done(o, time.Millisecond)
		made++
	}
	return made
}

// Several replicas, one view, item 1: the vendor fails the calls of two
// replicas: their breakers open, and the third replica's, which has made
// no call, fails fast within a second; once the open time is up, one
// replica alone probes; its success closes every replica's breaker.
func TestSharedBreakerOpensOnTwoReplicasEvidence(t *testing.T) {
	srv := testredis.Start(t)
	a, b, c := replicaBreaker(t, srv.URL()), replicaBreaker(t, srv.URL()), replicaBreaker(t, srv.URL())
	calls(a, 5, breaker.Failure)
	calls(b, 5, breaker.Failure)
	opened := time.Now()
	if a.State() != breaker.Open || b.State() != breaker.Open {
		t.Fatalf("the failing replicas' own breakers are %s and %s, want open", a.State(), b.State())
	}
	took, ok := testwait.Within(2*time.Second, func() bool { return c.Rejecting() != nil })
	if !ok || took > time.Second {
		t.Fatalf("replica c fails fast %s after two replicas opened (%v), want within 1 s", took, ok)
	}
	t.Logf("replica c failed fast %s after a and b opened", took.Round(time.Millisecond))

	// After the open second, exactly one replica may probe.
	var probers []*breaker.Breaker
	testwait.Within(3*time.Second, func() bool {
		probers = probers[:0]
		for _, r := range []*breaker.Breaker{a, b, c} {
			if r.Rejecting() == nil {
				probers = append(probers, r)
			}
		}
		return len(probers) > 0
	})
	if len(probers) != 1 {
		t.Fatalf("%d replicas may probe %s after the cluster's breaker opened, want exactly one", len(probers), time.Since(opened).Round(time.Millisecond))
	}
	if made := calls(probers[0], 1, breaker.Success); made != 1 {
		t.Fatal("the prober's probe was refused")
	}
	took, ok = testwait.Within(2*time.Second, func() bool {
		return a.State() == breaker.Closed && b.State() == breaker.Closed && c.State() == breaker.Closed
	})
	if !ok {
		t.Fatalf("after the probe succeeded: %s %s %s, want every breaker closed", a.State(), b.State(), c.State())
	}
	t.Logf("every breaker closed %s after the probe", took.Round(time.Millisecond))
}

// One replica whose calls fail while its peers' succeed (its own network
// path is sick) opens its own breaker only: the others keep calling.
func TestSharedBreakerIsNotPoisonedByOneReplica(t *testing.T) {
	srv := testredis.Start(t)
	a, b, c := replicaBreaker(t, srv.URL()), replicaBreaker(t, srv.URL()), replicaBreaker(t, srv.URL())
	calls(b, 10, breaker.Success)
	calls(c, 10, breaker.Success)
	calls(a, 10, breaker.Failure)
	if a.State() != breaker.Open {
		t.Fatalf("the failing replica's breaker is %s, want open", a.State())
	}
	if _, opened := testwait.Within(1500*time.Millisecond, func() bool { return b.Rejecting() != nil || c.Rejecting() != nil }); opened {
		t.Errorf("one replica's failures opened its peers' breakers: %s, %s", b.State(), c.State())
	}
}

// When Redis goes away, a replica held open by the others' verdict is its
// own again within holdPast of the cluster's open time: its breaker,
// which saw no failure, lets its calls through.
func TestSharedBreakerWithoutRedisIsLocal(t *testing.T) {
	srv := testredis.Start(t)
	a, b, c := replicaBreaker(t, srv.URL()), replicaBreaker(t, srv.URL()), replicaBreaker(t, srv.URL())
	calls(a, 5, breaker.Failure)
	calls(b, 5, breaker.Failure)
	if _, ok := testwait.Within(2*time.Second, func() bool { return c.Rejecting() != nil }); !ok {
		t.Fatal("replica c was not held open by the others' verdict")
	}
	srv.Kill()
	// Held until the cluster's open second ends, and holdPast after it.
	bound := time.Second + holdPast + breakerTick
	took, ok := testwait.Within(2*bound, func() bool { return c.Rejecting() == nil })
	if !ok || took > bound {
		t.Errorf("with Redis gone, replica c was still held open after %s (%v), want its own again within %s", took, ok, bound)
	}
	// Redis back, empty: a's and b's breakers, still open on their own
	// failures, open the cluster's again, and c is held again.
	srv.Restart(t)
	back, ok := testwait.Within(10*time.Second, func() bool { return c.Rejecting() != nil })
	if !ok || back > 2*time.Second {
		t.Errorf("Redis back: replica c held open again after %s (%v), want within 2 s", back, ok)
	}
	t.Logf("Redis killed: replica c its own again %s after; Redis back: held again %s after", took.Round(time.Millisecond), back.Round(time.Millisecond))
}

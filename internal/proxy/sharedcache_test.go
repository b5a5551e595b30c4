package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/testcallers"
	"github.com/seawall/seawall/internal/testlog"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/upstream"
)

// newSharedStacks runs n Seawalls in this process, each with its own link
// to one test-owned Redis (replicas, as far as the cache can tell: each
// has its own memory), in front of one fake vendor, with upstream "api"
// configured by extra. Redis's timeout is a second: beside the race
// detector's load a 50 ms one is missed, and each replica then fills for
// itself, as documented for a Redis that does not answer.
func newSharedStacks(t testing.TB, n int, extra string, top ...string) ([]*stack, *fakeapi.Server, *testredis.Server) {
	t.Helper()
	srv := testredis.Start(t)
	fake := fakeapi.New(fakeapi.Behavior{})
	up := httptest.NewServer(fake)
	t.Cleanup(up.Close)
	out := make([]*stack, n)
	for i := range out {
		doc := fmt.Sprintf("admin: {listen: \"off\"}\n%sredis: {url: %q, key_prefix: shared-cache, timeout: 1s}\nupstreams:\n  api:\n    url: %s\n%s", strings.Join(top, ""), srv.URL(), up.URL, extra)
		cfg, err := config.Parse("test.yaml", []byte(doc), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("config:\n%s\n%v", doc, err)
		}
		tt, _ := t.(*testing.T)
		s := &stack{t: tt, fake: fake, up: up, logs: &testlog.Buffer{}, clock: &testClock{}, doc: doc, cfg: cfg, m: proxy.NewMetrics()}
		log := slog.New(slog.NewJSONHandler(s.logs, nil))
		cl, err := cluster.Open(cfg.Redis, cluster.Replica{Version: "test"}, log, cluster.Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g := routine.New(log)
		g.Go("cluster", func() { defer close(done); cl.Run(ctx, g) })
		t.Cleanup(func() { cancel(); <-done })
		s.ups = upstream.NewSet(cfg, upstream.Parts{Metrics: s.m, Log: log, Cluster: cl})
		t.Cleanup(s.ups.Close)
		s.proxy = proxy.New(cfg, s.ups)
		t.Cleanup(s.proxy.Close)
		s.sw = serveSeawall(t, s.proxy, cfg.H2C)
		s.c = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
		t.Cleanup(s.c.CloseIdleConnections)
		out[i] = s
	}
	return out, fake, srv
}

// Several replicas, one view, acceptance 3, every variant of
// TestCacheNeverCrossesCallers replayed across three replicas sharing the
// cache: each caller's answer, fetched through one replica, is served to
// that caller by the others from the shared level (one vendor call per
// caller), and never to another caller.
func TestSharedCacheNeverCrossesCallers(t *testing.T) {
	stacks, fake, _ := newSharedStacks(t, 3, testcallers.Policy)
	fake.Set(fakeapi.Behavior{Body: "answer {n}", Headers: map[string]string{"Cache-Control": "public, max-age=600"}})
	ways := testcallers.CacheWays()
	seen := map[string]string{}
	for i, w := range ways {
		first := stacks[i%3]
		r := first.getWith("/api/v1/profile"+w.Query, w.Header...)
		if r.status != 200 {
			t.Fatalf("%s: %d", w.Name, r.status)
		}
		if who, ok := seen[r.body]; ok {
			t.Errorf("%s got %q, the answer fetched for %s", w.Name, r.body, who)
		}
		seen[r.body] = w.Name
		for k := 1; k <= 2; k++ {
			other := stacks[(i+k)%3]
			if again := other.getWith("/api/v1/profile"+w.Query, w.Header...); again.body != r.body || again.header.Get("Cache-Status") == "" {
				t.Errorf("%s through replica %d: %q (%s), want its own %q from the shared cache", w.Name, (i+k)%3+1, again.body, again.header.Get("Cache-Status"), r.body)
			}
		}
	}
	if calls := len(fake.Calls()); calls != len(ways) {
		t.Errorf("the vendor got %d calls for %d callers, want one each: the replicas did not share their entries", calls, len(ways))
	}
}

// Acceptance 3 in one process: 3 replicas × 50 concurrent GETs of one
// cold key make one vendor call; a write through replica 1 leaves no
// replica serving the entry 200 ms after its answer reached the app.
func TestSharedCacheFillsOnceAndInvalidatesEverywhere(t *testing.T) {
	stacks, fake, _ := newSharedStacks(t, 3, "    mode: cached\n    retry: {max_attempts: 1}\n    cache: {}\n")
	fake.Set(fakeapi.Behavior{Body: "v{n}", LatencyMin: fakeapi.Duration(50 * time.Millisecond), LatencyMax: fakeapi.Duration(50 * time.Millisecond), Headers: map[string]string{"Cache-Control": "max-age=600"}})
	var wg sync.WaitGroup
	bodies := make(chan string, 150)
	for _, s := range stacks {
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bodies <- s.get("/api/v1/item").body
			}()
		}
	}
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "v1" {
			t.Errorf("a caller got %q, want the one vendor answer v1", b)
		}
	}
	if calls := len(fake.Calls()); calls != 1 {
		t.Errorf("150 concurrent GETs of one cold key through 3 replicas made %d vendor calls, want 1", calls)
	}
	fake.Set(fakeapi.Behavior{Body: "w{n}", Headers: map[string]string{"Cache-Control": "max-age=600"}})
	if r := stacks[0].post("/api/v1/item", "{}", nil); r.status != 200 {
		t.Fatalf("the write: %d %s", r.status, r.body)
	}
	answered := time.Now()
	for i, s := range stacks {
		// The purge reaches the other replicas' memory through Redis's
		// publish: documented as a window under 200 ms (well under a
		// millisecond on loopback).
		for s.get("/api/v1/item").body == "v1" {
			if time.Since(answered) > 200*time.Millisecond {
				t.Fatalf("replica %d served the invalidated entry 200 ms after the write's answer reached the app", i+1)
			}
		}
	}
}

// A quick fill: the replica that stored the entry lets go of the turn
// within a Redis round trip or two, often between another replica's last
// look for the entry and its next try for the turn. That replica takes
// the turn and must look again before calling: 40 cold keys, each asked
// by 3 replicas at once, make 40 vendor calls.
func TestSharedCacheQuickFillIsNotRepeated(t *testing.T) {
	stacks, fake, _ := newSharedStacks(t, 3, "    mode: cached\n    retry: {max_attempts: 1}\n    cache: {}\n")
	fake.Set(fakeapi.Behavior{Body: "v{n}", LatencyMin: fakeapi.Duration(2 * time.Millisecond), LatencyMax: fakeapi.Duration(8 * time.Millisecond), Headers: map[string]string{"Cache-Control": "max-age=600"}})
	const keys = 40
	for k := range keys {
		var wg sync.WaitGroup
		for _, s := range stacks {
			for range 4 {
				wg.Go(func() {
					if r := s.get(fmt.Sprintf("/api/v1/item-%d", k)); r.status != 200 {
						t.Errorf("key %d: %d %s", k, r.status, r.body)
					}
				})
			}
		}
		wg.Wait()
	}
	if calls := len(fake.Calls()); calls != keys {
		t.Errorf("%d cold keys, each asked by 3 replicas at once, made %d vendor calls, want %d: a replica took the turn after the entry landed and filled it again", keys, calls, keys)
	}
}

// The shared cache level's cost, through the handler over loopback HTTP,
// beside a hit in memory (docs/benchmarks.md, "The shared cache"): a hit
// in the shared level (this replica's memory emptied before each), and a
// miss that takes the fill turn, calls the vendor and stores in both
// levels, beside a miss with memory alone.
func BenchmarkSharedCache(b *testing.B) {
	run := func(b *testing.B, s *stack, path func(i int) string, before func()) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if before != nil {
				before()
			}
			if r := s.get(path(i)); r.status != 200 {
				b.Fatalf("%d %s", r.status, r.body)
			}
		}
	}
	extra := "    mode: cached\n    retry: {max_attempts: 1}\n    cache: {}\n"
	body := fakeapi.Behavior{Body: "a cached answer of some sixty bytes, as a small JSON would be", Headers: map[string]string{"Cache-Control": "max-age=600"}}
	memoryOnly := "cache: {shared: false}\n" // the same replica, its cache its own
	one := func(i int) string { return "/api/v1/item" }
	each := func(i int) string { return fmt.Sprintf("/api/v1/item-%d", i) }
	b.Run("memory-hit", func(b *testing.B) {
		stacks, fake, _ := newSharedStacks(b, 1, extra, memoryOnly)
		fake.Set(body)
		run(b, stacks[0], one, nil)
	})
	b.Run("shared-hit", func(b *testing.B) {
		stacks, fake, _ := newSharedStacks(b, 2, extra)
		fake.Set(body)
		stacks[0].get("/api/v1/item")
		tiered := stacks[1].ups.Cache().(*cache.Tiered)
		run(b, stacks[1], one, func() { tiered.Forget("") })
	})
	b.Run("memory-miss", func(b *testing.B) {
		stacks, fake, _ := newSharedStacks(b, 1, extra, memoryOnly)
		fake.Set(body)
		run(b, stacks[0], each, nil)
	})
	b.Run("shared-miss-with-fill", func(b *testing.B) {
		stacks, fake, _ := newSharedStacks(b, 1, extra)
		fake.Set(body)
		run(b, stacks[0], each, nil)
	})
}

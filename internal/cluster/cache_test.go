package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
)

// The shared cache level on a real Redis: an entry set on one replica is
// read on another until its time to live ends; the level holds at most
// its size, dropping the entries closest to expiring first, and refuses
// one larger than all of it; a purge by prefix drops exactly those keys
// and tells every replica; one replica at a time has a key's fill turn.
func TestSharedCacheLevel(t *testing.T) {
	srv := testredis.Start(t)
	a, b := open(t, srv.URL(), time.Second), open(t, srv.URL(), time.Second)
	const limit = 1000
	la, lb := a.Cache(limit), b.Cache(limit)
	heard := make(chan string, 10)
	b.OnCachePurge(func(prefix string) { heard <- prefix })

	val := strings.Repeat("x", 200)
	if err := la.Set("GET|api|/a?|1", []byte(val), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := lb.Get("GET|api|/a?|1"); err != nil || string(got) != val {
		t.Fatalf("the other replica read %d bytes, %v", len(got), err)
	}
	if got, err := lb.Get("GET|api|/none"); got != nil || err != nil {
		t.Errorf("an absent key read as %q, %v", got, err)
	}
	// Four more of about 212 bytes each: the level holds four in 1,000,
	// so the one closest to expiring (/e, 10 s) goes first; /a lasts.
	for _, k := range []struct {
		key string
		ttl time.Duration
	}{{"GET|api|/b?|1", time.Hour}, {"GET|api|/c?|1", time.Hour}, {"GET|api|/e?|1", 10 * time.Second}, {"GET|api|/d?|1", time.Hour}} {
		if err := la.Set(k.key, []byte(val), k.ttl); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := lb.Get("GET|api|/e?|1"); got != nil {
		t.Error("the entry closest to expiring was kept past the level's size")
	}
	for _, k := range []string{"GET|api|/a?|1", "GET|api|/b?|1", "GET|api|/c?|1", "GET|api|/d?|1"} {
		if got, _ := lb.Get(k); got == nil {
			t.Errorf("%s was evicted", k)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(srv.URL(), "redis://")})
	defer rdb.Close()
	if n, _ := rdb.Get(context.Background(), "t:cache:bytes").Int(); n > limit {
		t.Errorf("the level counts %d bytes, over its %d", n, limit)
	}
	if err := la.Set("GET|api|/huge?|1", []byte(strings.Repeat("y", 2000)), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := lb.Get("GET|api|/huge?|1"); got != nil {
		t.Error("an entry larger than the whole level was kept")
	}
	if err := la.Set("GET|api|/short?|1", []byte("s"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok := testwait.Within(2*time.Second, func() bool { got, _ := lb.Get("GET|api|/short?|1"); return got == nil }); !ok {
		t.Error("an entry outlived its time to live")
	}

	n, err := la.Purge("GET|api|/b")
	if err != nil || n != 1 {
		t.Errorf("purging /b dropped %d, %v; want 1", n, err)
	}
	if got, _ := lb.Get("GET|api|/c?|1"); got == nil {
		t.Error("a purge by prefix dropped another path")
	}
	select {
	case p := <-heard:
		if p != "GET|api|/b" {
			t.Errorf("the other replica was told to purge %q", p)
		}
	case <-time.After(2 * time.Second):
		t.Error("the other replica was not told of the purge")
	}

	release, mine, err := la.Fill("k", time.Second)
	if err != nil || !mine {
		t.Fatalf("the first fill turn: %v, %v", mine, err)
	}
	if _, mine, _ := lb.Fill("k", time.Second); mine {
		t.Error("two replicas had one key's fill turn at once")
	}
	release()
	if _, mine, _ := lb.Fill("k", time.Second); !mine {
		t.Error("a released fill turn was not taken")
	}

	rdb.Set(context.Background(), "t:cache:e:GET|api|/junk", "not an entry", time.Minute)
	if got, err := lb.Get("GET|api|/junk"); err != nil || string(got) != "not an entry" {
		t.Errorf("the level read %q, %v (the cache, not the level, judges what it holds)", got, err)
	}
}

package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/usage"
)

// quotaMeter is a replica's meter of upstream "api" with a daily quota of
// limit that refuses, counted with the others through cl.
func quotaMeter(t *testing.T, cl *cluster.Cluster, limit int) *usage.Meter {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("upstreams:\n  api:\n    url: http://x\n    quota: {daily: "+strconv.Itoa(limit)+"}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	m := usage.NewMeter("api", nil)
	m.Configure(cfg.Upstreams["api"])
	m.Share(cl.Upstream("api"), cl.ID())
	return m
}

// spend reserves calls on m until the quota refuses tries times in a row,
// refunding every refundEvery-th taken call (0: none), and returns the
// calls taken and not refunded.
func spend(t *testing.T, m *usage.Meter, tries, refundEvery int) int {
	t.Helper()
	kept, taken, refused := 0, 0, 0
	for i := 0; i < 10000 && refused < tries; i++ {
		err := m.Reserve(context.Background(), "default")
		var qe *usage.QuotaError
		switch {
		case errors.As(err, &qe):
			refused++
			continue
		case err != nil:
			t.Fatalf("reserve: %v", err)
		}
		refused = 0
		taken++
		if refundEvery > 0 && taken%refundEvery == 0 {
			m.Refund("default")
			continue
		}
		kept++
	}
	return kept
}

// Several replicas, item 4: three replicas' meters sharing a daily quota
// of 300 through Redis, reserving at once and refunding some of their
// calls, keep exactly 300 between them; each replica's part is reported;
// and when Redis restarts empty the count starts again from the total the
// replicas saved, so that the quota stays spent.
func TestSharedQuotaIsExact(t *testing.T) {
	srv := testredis.Start(t)
	cls := []*cluster.Cluster{open(t, srv.URL(), time.Second), open(t, srv.URL(), time.Second), open(t, srv.URL(), time.Second)}
	meters := make([]*usage.Meter, len(cls))
	for i, cl := range cls {
		meters[i] = quotaMeter(t, cl, 300)
	}
	kept := make([]int, len(meters))
	// Refunds are told at the next call or sync, so that a refused replica
	// may have room after the others sync: two rounds, the second without
	// refunds, spend what the first gave back.
	for round, refund := range []int{7, 0} {
		var wg sync.WaitGroup
		for i, m := range meters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				kept[i] += spend(t, m, 20, refund)
			}()
		}
		wg.Wait()
		for _, m := range meters {
			m.Sync(context.Background())
		}
		t.Logf("round %d: kept %v", round+1, kept)
	}
	if total := kept[0] + kept[1] + kept[2]; total != 300 {
		t.Fatalf("the replicas kept %v calls, %d in all, want exactly 300", kept, total)
	}
	r := meters[0].Report()
	if r.Cluster == nil || r.Cluster.Today.Billable != 300 || r.Quota.UsedToday != 300 {
		t.Fatalf("replica 1 reports %+v (quota %+v), want the cluster's 300", r.Cluster, r.Quota)
	}
	for i, cl := range cls {
		if got := r.Cluster.Today.Replicas[cl.ID()]; got != int64(kept[i]) {
			t.Errorf("replica %d's part is %d, it kept %d", i+1, got, kept[i])
		}
	}

	// Every replica and Redis restart: the replicas' saved states (one
	// record, as a shared job store keeps it) seed the empty Redis.
	saved := meters[2].State()
	srv.Kill()
	srv.Restart(t)
	again := open(t, srv.URL(), time.Second)
	fresh := quotaMeter(t, again, 300)
	fresh.Restore(saved)
	for range 50 { // the heartbeat finds Redis back within a second
		if again.Up() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := fresh.Reserve(context.Background(), "default")
	var qe *usage.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("after Redis and the replicas restarted, a call was let through (%v): the count was lost", err)
	}
	// A replica that saved nothing joins: the seeded count holds it too.
	late := quotaMeter(t, open(t, srv.URL(), time.Second), 300)
	if err := late.Reserve(context.Background(), "default"); !errors.As(err, &qe) {
		t.Fatalf("a new replica was let through the spent quota: %v", err)
	}
	if u := late.Report().Quota.UsedToday; u != 300 {
		t.Errorf("the new replica sees %d used, want 300", u)
	}
}

// Several replicas, item 6: while Redis is away, each replica takes its
// share of what the quota had left (rank by rank, adding up to it), and
// when Redis answers again the calls made meanwhile are told, so that the
// total is every call made. A count whose answer did not come in time
// (one per replica here, when Redis froze) may have been made all the
// same: the total may be over by those, never under.
func TestSharedQuotaWhileRedisIsAway(t *testing.T) {
	srv := testredis.Start(t)
	cls := []*cluster.Cluster{open(t, srv.URL(), 50*time.Millisecond), open(t, srv.URL(), 50*time.Millisecond)}
	waitForMembers(t, cls, 2)
	meters := []*usage.Meter{quotaMeter(t, cls[0], 101), quotaMeter(t, cls[1], 101)}
	for i := range 20 {
		if err := meters[i%2].Reserve(context.Background(), "default"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for _, m := range meters {
		m.Sync(context.Background())
	}
	srv.Freeze()
	kept := 0
	for _, m := range meters {
		kept += spend(t, m, 3, 0)
	}
	if kept != 81 {
		t.Errorf("while Redis was frozen the two replicas took %d calls, want the 81 left, shared", kept)
	}
	srv.Thaw()
	// As Book.Run does every second: sync until both have told their calls.
	var told int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && told < 101; time.Sleep(100 * time.Millisecond) {
		for _, m := range meters {
			m.Sync(context.Background())
		}
		if c := meters[1].Report().Cluster; c != nil {
			told = c.Today.Billable
		}
	}
	meters[0].Sync(context.Background())
	if r := meters[0].Report(); r.Cluster == nil || r.Cluster.Today.Billable < 101 || r.Cluster.Today.Billable > 103 {
		t.Errorf("after Redis came back the cluster counts %+v, want the 101 calls made (and at most the 2 unanswered counts)", r.Cluster)
	}
}

// waitForMembers waits until every replica's heartbeat has counted n.
func waitForMembers(t *testing.T, cls []*cluster.Cluster, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		all := true
		for _, cl := range cls {
			if _, got := cl.Share(); got != n {
				all = false
			}
		}
		if all {
			return
		}
	}
	t.Fatalf("the replicas did not see each other")
}

// Several replicas, item 7: a count key that another program overwrote
// (not a hash, or a total that is not a number) is read as lost: it
// starts again from the replica's seed, Redis still counts as answering.
func TestGarbageCountIsAbsent(t *testing.T) {
	srv := testredis.Start(t)
	cl := open(t, srv.URL(), time.Second)
	m := quotaMeter(t, cl, 10)
	if err := m.Reserve(context.Background(), "default"); err != nil {
		t.Fatal(err)
	}
	day := m.State().DayKey
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(srv.URL(), "redis://")})
	defer rdb.Close()
	ctx := context.Background()
	for _, garbage := range []func() error{
		func() error { return rdb.Set(ctx, "t:usage:api:day:"+day, "\x00 not a hash", time.Minute).Err() },
		func() error { return rdb.HSet(ctx, "t:usage:api:day:"+day, "total", "many", "r:"+cl.ID(), "{}").Err() },
	} {
		if err := garbage(); err != nil {
			t.Fatal(err)
		}
		if err := m.Reserve(context.Background(), "default"); err != nil {
			t.Fatalf("a call after garbage under the count key: %v", err)
		}
		m.Sync(ctx)
		if !cl.Up() {
			t.Fatal("garbage under the count key made Redis count as down")
		}
	}
	if c := m.Report().Cluster; c == nil || c.Today.Billable != 3 {
		t.Errorf("the day's count after garbage is %+v, want 3: started again from the seed each time", c)
	}
}

package cluster_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
)

// replicaRecorders runs n incident recorders, each sharing through its
// own link to the Redis at url, and gathers the notices each would send.
type replicaRecorders struct {
	recs    []*incident.Recorder
	mu      sync.Mutex
	notices [][]incident.Notice
}

func startRecorders(t *testing.T, url string, n int) *replicaRecorders {
	t.Helper()
	rr := &replicaRecorders{notices: make([][]incident.Notice, n)}
	for i := range n {
		cl := open(t, url, 200*time.Millisecond)
		rec := incident.NewRecorder(incident.Config{ResolveAfter: time.Second}, nil)
		rec.Share(cl.Incidents(), cl.ID(), fmt.Sprintf("zone-%c", 'a'+i))
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			rec.Run(stop, func(n incident.Notice) {
				rr.mu.Lock()
				rr.notices[i] = append(rr.notices[i], n)
				rr.mu.Unlock()
			})
		}()
		t.Cleanup(func() { close(stop); <-done })
		rr.recs = append(rr.recs, rec)
	}
	return rr
}

// outage has every replica see the upstream's breaker open, then close,
// and waits until each has resolved its incident.
func (rr *replicaRecorders) outage(t *testing.T) {
	t.Helper()
	for _, rec := range rr.recs {
		rec.Publish(incident.Event{Type: incident.BreakerOpened, Upstream: "api", Severity: incident.Error, Summary: "breaker opened"})
	}
	if _, ok := testwait.Within(10*time.Second, func() bool {
		for _, rec := range rr.recs {
			if l := rec.Incidents(); len(l) == 0 || l[0].State() != "open" {
				return false
			}
		}
		return true
	}); !ok {
		t.Fatal("not every replica opened an incident within 10 s")
	}
	for _, rec := range rr.recs {
		rec.Publish(incident.Event{Type: incident.BreakerClosed, Upstream: "api", Severity: incident.Info, Summary: "breaker closed"})
		time.Sleep(300 * time.Millisecond) // the replicas heal one after another
	}
	if _, ok := testwait.Within(15*time.Second, func() bool {
		for _, rec := range rr.recs {
			if rec.Incidents()[0].State() != "resolved" {
				return false
			}
		}
		return true
	}); !ok {
		t.Fatal("not every replica resolved its incident within 15 s")
	}
	time.Sleep(1500 * time.Millisecond) // a tick more, for a resolve sent late
}

// sent counts the notices of each action sent since from (per replica),
// and returns their dedup keys.
func (rr *replicaRecorders) sent(from []int) (triggers, resolves int, keys []string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for i, ns := range rr.notices {
		for _, n := range ns[from[i]:] {
			if n.Action == incident.Trigger {
				triggers++
			} else {
				resolves++
			}
			keys = append(keys, incident.DedupKey(n.Incident))
		}
	}
	return triggers, resolves, keys
}

func (rr *replicaRecorders) marks() []int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make([]int, len(rr.notices))
	for i, ns := range rr.notices {
		out[i] = len(ns)
	}
	return out
}

// Several replicas, one view, item 3 on a real Redis: an outage seen by
// three replicas is one incident: one trigger and one resolve, with one
// dedup key, among the three; each replica's incident carries the
// cluster's id and shows every replica's events. Later outages get new
// ids, above the last even when Redis restarted empty; while Redis does
// not answer, each replica tells of its own incident, as with no cluster.
func TestReplicasShareOneIncident(t *testing.T) {
	srv := testredis.Start(t)
	rr := startRecorders(t, srv.URL(), 3)
	var ids []int64
	for round := range 3 {
		if round == 2 {
			srv.Kill()
			srv.Restart(t) // empty: the id counter is gone
		}
		from := rr.marks()
		rr.outage(t)
		triggers, resolves, keys := rr.sent(from)
		if triggers != 1 || resolves != 1 || len(slices.Compact(keys)) != 1 {
			t.Fatalf("outage %d: %d triggers and %d resolves sent with keys %v; want one of each, with one key", round+1, triggers, resolves, keys)
		}
		id := rr.recs[0].Incidents()[0].Cluster
		for i, rec := range rr.recs {
			in := rec.Incidents()[0]
			if in.Cluster != id || id == 0 {
				t.Fatalf("outage %d: replica %d's incident is the cluster's %d, replica 1's %d", round+1, i+1, in.Cluster, id)
			}
			full, _ := rec.Incident(in.ID)
			seen := map[string]int{}
			for _, e := range full.Events {
				seen[e.Replica+" "+e.ReplicaZone]++
			}
			if len(seen) != 3 || len(full.Events) != 6 {
				t.Errorf("outage %d: replica %d shows %d events from %v, want 6 from the three replicas with their zones", round+1, i+1, len(full.Events), seen)
			}
		}
		if want := fmt.Sprintf("seawall/api/cluster-%d", id); keys[0] != want {
			t.Errorf("dedup key %q, want %q", keys[0], want)
		}
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Errorf("outage %d has id %d, not above the last, %d", round+1, id, ids[len(ids)-1])
		}
		ids = append(ids, id)
	}
	srv.Kill()
	from := rr.marks()
	rr.outage(t)
	if triggers, resolves, keys := rr.sent(from); triggers != 3 || resolves != 3 || len(slices.Compact(slices.Sorted(slices.Values(keys)))) != 3 {
		t.Errorf("with Redis gone: %d triggers, %d resolves with keys %v; want each replica's own", triggers, resolves, keys)
	}
	t.Logf("cluster incident ids %v", ids)
}

var _ incident.Shared = (&cluster.Cluster{}).Incidents()

package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testdb"
)

// recorder is a Deliverer whose answers a test scripts per upstream.
type recorder struct {
	mu    sync.Mutex
	calls map[int64][]int // job id -> attempts seen
	keys  map[int64]string
	fn    func(id int64, attempt int, d Delivery) error // guarded by mu
}

func newRecorder() *recorder {
	return &recorder{calls: map[int64][]int{}, keys: map[int64]string{}, fn: func(int64, int, Delivery) error { return nil }}
}

func (r *recorder) Deliver(_ context.Context, id int64, attempt int, d Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[id] = append(r.calls[id], attempt)
	r.keys[id] = d.IdempotencyKey
	return r.fn(id, attempt, d)
}

func (r *recorder) set(fn func(id int64, attempt int, d Delivery) error) {
	r.mu.Lock()
	r.fn = fn
	r.mu.Unlock()
}

func (r *recorder) count(id int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls[id])
}

var testConfig = Config{
	Upstreams:         map[string]int{"api": 4, "other": 1},
	MaxAttempts:       3,
	Schedule:          Schedule{Delays: []time.Duration{10 * time.Millisecond}},
	Retention:         time.Hour,
	AttemptTimeout:    10 * time.Second,
	VisibilityTimeout: time.Minute,
	PollInterval:      20 * time.Millisecond,
}

// opener opens a store of one kind; each call in one test gets the same database.
type opener func(t *testing.T, d Deliverer) Store

func dsnOpener(dsn string) opener {
	return func(t *testing.T, d Deliverer) Store {
		s, err := Open(context.Background(), dsn, testConfig, d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// forEachStore runs a test over both stores.
func forEachStore(t *testing.T, test func(t *testing.T, open opener)) {
	forEachDSN(t, func(t *testing.T, dsn string) { test(t, dsnOpener(dsn)) })
}

// forEachDSN runs a test over a fresh database of each kind.
func forEachDSN(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "jobs.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, testdb.PostgresURL(t)) })
}

func start(t *testing.T, open opener, d Deliverer) Store {
	t.Helper()
	s := open(t, d)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func waitState(t *testing.T, s Store, id int64, want State) Job {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		j, err := s.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s (attempt %d, %q), want %s", id, j.State, j.Attempt, j.LastError, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func delivery(key string) Delivery {
	return Delivery{Upstream: "api", Method: "POST", Path: "/v1/send?x=1", Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(`{"to":"+1"}`), IdempotencyKey: key}
}

func TestDeliversOnceAndSucceeds(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		s := start(t, open, rec)
		j, existing, err := s.Enqueue(context.Background(), delivery(""))
		if err != nil || existing || j.State != Queued {
			t.Fatalf("Enqueue = %+v, %v, %v", j, existing, err)
		}
		got := waitState(t, s, j.ID, Succeeded)
		if rec.count(j.ID) != 1 || got.Attempt != 1 || got.FinalizedAt == nil {
			t.Errorf("delivered %d times, job %+v; want once, attempt 1, finalized", rec.count(j.ID), got)
		}
		if string(got.Delivery.Body) != `{"to":"+1"}` || got.Delivery.Path != "/v1/send?x=1" || got.Delivery.Header["Content-Type"][0] != "application/json" {
			t.Errorf("stored delivery = %+v", got.Delivery)
		}
	})
}

func TestIdempotencyKeyDeduplicates(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		s := start(t, open, rec)
		a, existsA, err := s.Enqueue(context.Background(), delivery("key-1"))
		if err != nil {
			t.Fatal(err)
		}
		b, existsB, err := s.Enqueue(context.Background(), delivery("key-1"))
		if err != nil {
			t.Fatal(err)
		}
		if existsA || !existsB || a.ID != b.ID {
			t.Fatalf("ids %d, %d (existing %v, %v); want one job", a.ID, b.ID, existsA, existsB)
		}
		other := delivery("key-1")
		other.Upstream = "other"
		c, existsC, _ := s.Enqueue(context.Background(), other)
		if existsC || c.ID == a.ID {
			t.Errorf("the same key on another upstream was deduplicated")
		}
		waitState(t, s, a.ID, Succeeded)
		if n := rec.count(a.ID); n != 1 {
			t.Errorf("delivered %d times, want 1", n)
		}
	})
}

func TestFailingJobGoesDeadAndReplays(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		rec.set(func(int64, int, Delivery) error { return errors.New("upstream said 500") })
		s := start(t, open, rec)
		j, _, err := s.Enqueue(context.Background(), delivery(""))
		if err != nil {
			t.Fatal(err)
		}
		dead := waitState(t, s, j.ID, Dead)
		if rec.count(j.ID) != 3 || dead.Attempt != 3 || dead.LastError != "upstream said 500" {
			t.Errorf("dead after %d deliveries: %+v; want 3 attempts and the last error", rec.count(j.ID), dead)
		}
		list, err := s.List(context.Background(), Filter{Upstream: "api", State: Dead})
		if err != nil || len(list) != 1 || list[0].ID != j.ID {
			t.Errorf("List(dead) = %v, %v", list, err)
		}
		rec.set(func(int64, int, Delivery) error { return nil })
		if _, err := s.Retry(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		waitState(t, s, j.ID, Succeeded)
		if n := rec.count(j.ID); n != 4 {
			t.Errorf("delivered %d times in all, want 4", n)
		}
	})
}

func TestWaitingSpendsNoAttempts(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		rec.set(func(id int64, attempt int, d Delivery) error {
			if len(rec.calls[id]) <= 5 { // the breaker is open for the first five tries
				return &WaitError{After: 10 * time.Millisecond}
			}
			return nil
		})
		s := start(t, open, rec)
		j, _, _ := s.Enqueue(context.Background(), delivery(""))
		done := waitState(t, s, j.ID, Succeeded)
		if rec.count(j.ID) != 6 || done.Attempt > 1 {
			t.Errorf("%d tries ending at attempt %d; want 6 tries and attempt 1: waits must not spend attempts (max 3)", rec.count(j.ID), done.Attempt)
		}
	})
}

func TestCancelAndStopKeepQueued(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		s := open(t, rec) // not started: jobs stay queued
		ctx := context.Background()
		var ids []int64
		for i := 0; i < 5; i++ {
			j, _, err := s.Enqueue(ctx, delivery(fmt.Sprintf("k%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		if j, err := s.Cancel(ctx, ids[0]); err != nil || j.State != Canceled {
			t.Fatalf("Cancel = %+v, %v", j, err)
		}
		page1, _ := s.List(ctx, Filter{Upstream: "api", State: Queued, Limit: 2})
		page2, _ := s.List(ctx, Filter{Upstream: "api", State: Queued, Limit: 2, AfterID: page1[len(page1)-1].ID})
		if len(page1) != 2 || len(page2) != 2 || page2[0].ID <= page1[1].ID {
			t.Errorf("paging: %d then %d jobs", len(page1), len(page2))
		}
		if all, err := s.List(ctx, Filter{Limit: 1 << 30}); err != nil || len(all) != 5 {
			t.Errorf("List with a huge limit = %d jobs, %v; want the 5, clamped, without a panic", len(all), err)
		}
		if _, err := s.Get(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		// A new process on the same database delivers what was queued.
		s2 := start(t, open, rec)
		for _, id := range ids[1:] {
			waitState(t, s2, id, Succeeded)
		}
		if j, _ := s2.Get(ctx, ids[0]); j.State != Canceled || rec.count(ids[0]) != 0 {
			t.Errorf("canceled job: %s, delivered %d times", j.State, rec.count(ids[0]))
		}
	})
}

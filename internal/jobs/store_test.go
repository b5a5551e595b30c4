package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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

func (r *recorder) Deliver(_ context.Context, id int64, attempt int, d Delivery) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[id] = append(r.calls[id], attempt)
	r.keys[id] = d.IdempotencyKey
	if err := r.fn(id, attempt, d); err != nil {
		return &Result{Status: 503, Body: []byte("attempt " + strconv.Itoa(attempt) + " failed")}, err
	}
	return &Result{Status: 201, Header: map[string][]string{"Location": {"/v1/things/" + strconv.FormatInt(id, 10)}}, Body: []byte(`{"ok":true}`)}, nil
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

func dsnOpener(dsn string, cfg Config) opener {
	return func(t *testing.T, d Deliverer) Store {
		s, err := Open(context.Background(), dsn, cfg, d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// forEachStore runs a test over both stores.
func forEachStore(t *testing.T, test func(t *testing.T, open opener)) {
	forEachStoreWith(t, testConfig, test)
}

// forEachStoreWith runs a test over both stores opened with cfg.
func forEachStoreWith(t *testing.T, cfg Config, test func(t *testing.T, open opener)) {
	forEachDSN(t, func(t *testing.T, dsn string) { test(t, dsnOpener(dsn, cfg)) })
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

// An enqueue answers with the job as the store holds it: a new job's
// delivery is the one written, and a duplicate's is the first request's,
// whose token and fingerprint the caller compares and hands back.
func TestEnqueueAnswersWithTheStoredJob(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		s := start(t, open, newRecorder())
		first := delivery("key-2")
		first.Scope, first.Fingerprint, first.Token, first.RequestID = "POST /v1/send", "fp-1", "tok-1", "req-1"
		a, _, err := s.Enqueue(context.Background(), first)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.Get(context.Background(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The job may be running by now; what it was written with is fixed.
		if !reflect.DeepEqual(a.Delivery, stored.Delivery) || a.State != Queued || !a.CreatedAt.Equal(stored.CreatedAt) {
			t.Errorf("Enqueue answered %+v, the store holds %+v", a, stored)
		}
		again := first
		again.Fingerprint, again.Token, again.RequestID = "fp-2", "tok-2", "req-2"
		b, existing, err := s.Enqueue(context.Background(), again)
		if err != nil || !existing || b.ID != a.ID {
			t.Fatalf("second enqueue = %d, %v, %v; want job %d again", b.ID, existing, err, a.ID)
		}
		if b.Delivery.Fingerprint != "fp-1" || b.Delivery.Token != "tok-1" || b.Delivery.RequestID != "req-1" {
			t.Errorf("a duplicate answered with %+v, want the first request's delivery", b.Delivery)
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

func TestDeferredJobsKeepTheirResult(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		s := start(t, open, rec)
		ctx := context.Background()
		d := delivery("")
		d.Deferred = true
		deferred, _, _ := s.Enqueue(ctx, d)
		plain, _, _ := s.Enqueue(ctx, delivery(""))
		got := waitState(t, s, deferred.ID, Succeeded)
		if got.Result == nil || got.Result.Status != 201 || string(got.Result.Body) != `{"ok":true}` ||
			got.Result.Header["Location"][0] != "/v1/things/"+strconv.FormatInt(deferred.ID, 10) {
			t.Errorf("deferred result = %+v", got.Result)
		}
		if p := waitState(t, s, plain.ID, Succeeded); p.Result != nil {
			t.Errorf("an async job kept a result: %+v", p.Result)
		}
		// A deferred job that dies keeps the last answer it got.
		rec.set(func(int64, int, Delivery) error { return errors.New("upstream said 503") })
		failing, _, _ := s.Enqueue(ctx, d)
		dead := waitState(t, s, failing.ID, Dead)
		if dead.Result == nil || dead.Result.Status != 503 || string(dead.Result.Body) != "attempt 3 failed" {
			t.Errorf("dead deferred result = %+v", dead.Result)
		}
	})
}

// notifier records callbacks; the first fail calls fail.
type notifier struct {
	mu   sync.Mutex
	fail int
	got  []Job
	errs int
}

func (n *notifier) Notify(_ context.Context, j Job) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail > 0 {
		n.fail--
		n.errs++
		return errors.New("callback endpoint answered 500")
	}
	n.got = append(n.got, j)
	return nil
}

func (n *notifier) sent() []Job {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Job(nil), n.got...)
}

func TestCallbacksFollowTheFinalStateAndRetry(t *testing.T) {
	n := &notifier{fail: 2}
	cfg := testConfig
	cfg.Notifier = n
	forEachStoreWith(t, cfg, func(t *testing.T, open opener) {
		n.mu.Lock()
		n.got, n.fail, n.errs = nil, 2, 0
		n.mu.Unlock()
		rec := newRecorder()
		rec.set(func(_ int64, _ int, d Delivery) error {
			if string(d.Body) == "fail" {
				return errors.New("upstream said 500")
			}
			return nil
		})
		s := start(t, open, rec)
		ctx := context.Background()
		ok := delivery("")
		ok.Callback, ok.Deferred = "http://app.test/done", true
		bad := ok
		bad.Body = []byte("fail")
		none := delivery("")
		a, _, _ := s.Enqueue(ctx, ok)
		b, _, _ := s.Enqueue(ctx, bad)
		c, _, _ := s.Enqueue(ctx, none)
		waitState(t, s, c.ID, Succeeded)
		deadline := time.Now().Add(15 * time.Second)
		for len(n.sent()) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // room for a wrong extra callback
		byID := map[int64]Job{}
		for _, j := range n.sent() {
			if _, dup := byID[j.ID]; dup {
				t.Errorf("job %d called back twice", j.ID)
			}
			byID[j.ID] = j
		}
		if len(byID) != 2 || byID[a.ID].State != Succeeded || byID[a.ID].Result == nil || byID[b.ID].State != Dead {
			t.Fatalf("callbacks = %+v; want job %d succeeded with its result and job %d dead", byID, a.ID, b.ID)
		}
		if n.errs != 2 {
			t.Errorf("the endpoint failed %d times, want the 2 scripted failures retried", n.errs)
		}
		// Callbacks are bookkeeping: not listed, counted or shown as jobs.
		list, _ := s.List(ctx, Filter{})
		counts, _ := s.Counts(ctx)
		total := 0
		for _, c := range counts {
			total += c.N
		}
		if len(list) != 3 || total != 3 {
			t.Errorf("List gave %d jobs and Counts %d, want the 3 deliveries", len(list), total)
		}
		if _, err := s.Get(ctx, c.ID+1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of a callback's id = %v, want ErrNotFound", err)
		}
	})
}

func TestMaxAgeDeadLettersUndelivered(t *testing.T) {
	cfg := testConfig
	cfg.MaxAge = 50 * time.Millisecond
	forEachStoreWith(t, cfg, func(t *testing.T, open opener) {
		rec := newRecorder()
		s := open(t, rec) // not started: the job only ages
		j, _, err := s.Enqueue(context.Background(), delivery(""))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		_ = s.Stop(context.Background())
		s = start(t, open, rec)
		dead := waitState(t, s, j.ID, Dead)
		if rec.count(j.ID) != 0 || dead.LastError != "not delivered within max_age 50ms" {
			t.Errorf("delivered %d times; dead job %+v", rec.count(j.ID), dead)
		}
	})
}

func TestConcurrentEnqueuesShareTransactionsNotKeys(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		s := open(t, newRecorder())
		const n = 300
		ids := make([]int64, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := ""
				if i%3 == 0 {
					key = fmt.Sprintf("k%d", i%30) // 10 keys, 10 requests each
				}
				j, _, err := s.Enqueue(context.Background(), delivery(key))
				if err != nil {
					t.Error(err)
				}
				ids[i] = j.ID
			}()
		}
		wg.Wait()
		byKey := map[int]int64{}
		distinct := map[int64]bool{}
		for i, id := range ids {
			distinct[id] = true
			if i%3 == 0 {
				if prev, ok := byKey[i%30]; ok && prev != id {
					t.Errorf("key k%d gave jobs %d and %d", i%30, prev, id)
				}
				byKey[i%30] = id
			}
		}
		if want := n - n/3 + 10; len(distinct) != want {
			t.Errorf("%d distinct jobs, want %d", len(distinct), want)
		}
		counts, err := s.Counts(context.Background())
		if err != nil || len(counts) != 1 || counts[0].State != Queued || counts[0].N != n-n/3+10 || time.Since(counts[0].Oldest) > time.Minute {
			t.Errorf("Counts = %+v, %v", counts, err)
		}
		_ = s.Stop(context.Background())
		if _, _, err := s.Enqueue(context.Background(), delivery("")); !errors.Is(err, ErrStopped) {
			t.Errorf("Enqueue after Stop = %v, want ErrStopped", err)
		}
	})
}

// The group-commit metrics count every enqueue once, in the transaction
// that committed it, and time each such transaction: the batch sizes'
// sum is the number of enqueues, and there is one commit time per batch.
func TestEnqueueMetricsCountEachCommittedEnqueueOnce(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		reg := prometheus.NewRegistry()
		cfg := testConfig
		cfg.Metrics = reg
		s, err := Open(context.Background(), dsn, cfg, newRecorder())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Stop(context.Background()) }()
		const n = 120
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := ""
				if i%4 == 0 {
					key = fmt.Sprintf("k%d", i%8) // two keys, 15 enqueues each
				}
				if _, _, err := s.Enqueue(context.Background(), delivery(key)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		hist := map[string]*dto.Histogram{}
		for _, f := range families {
			if len(f.GetMetric()) == 1 && f.GetMetric()[0].GetHistogram() != nil {
				hist[f.GetName()] = f.GetMetric()[0].GetHistogram()
			}
		}
		batch, commit := hist["seawall_job_enqueue_batch_size"], hist["seawall_job_enqueue_commit_seconds"]
		if batch == nil || commit == nil {
			t.Fatalf("histograms registered: %v", hist)
		}
		if batch.GetSampleSum() != n {
			t.Errorf("batch sizes sum to %v, want one per enqueue, %d", batch.GetSampleSum(), n)
		}
		if batch.GetSampleCount() == 0 || batch.GetSampleCount() > n || commit.GetSampleCount() != batch.GetSampleCount() {
			t.Errorf("%d batches and %d commit times for %d enqueues", batch.GetSampleCount(), commit.GetSampleCount(), n)
		}
		if commit.GetSampleSum() <= 0 {
			t.Errorf("commit times sum to %v", commit.GetSampleSum())
		}
	})
}

// With fsync off the stores still take, keep and deliver jobs across a
// restart (the relaxed policy differs only on a machine crash).
func TestNoFsyncStoresWork(t *testing.T) {
	cfg := testConfig
	cfg.NoFsync = true
	forEachStoreWith(t, cfg, func(t *testing.T, open opener) {
		rec := newRecorder()
		s := open(t, rec)
		j, _, err := s.Enqueue(context.Background(), delivery("k"))
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Stop(context.Background())
		s = start(t, open, rec)
		waitState(t, s, j.ID, Succeeded)
	})
}

// Replicas started together against one new PostgreSQL database each
// migrate it: they take turns, and every one opens. Before, their
// migrations collided in the catalog and all but one failed to start.
func TestReplicasOpenANewPostgresStoreAtOnce(t *testing.T) {
	dsn := testdb.PostgresURL(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			s, err := Open(context.Background(), dsn, testConfig, newRecorder())
			if err == nil {
				err = s.Stop(context.Background())
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a replica could not open the store: %v", err)
		}
	}
}

package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/upstream"
	"modernc.org/sqlite" // the pure-Go SQLite driver
)

// riverStore implements Store on River, for either database.
type riverStore[TTx any] struct {
	client *river.Client[TTx]
	cfg    Config
	close  func()
	// query runs the counting query, which differs by database.
	query   func(ctx context.Context) ([]Count, error)
	batcher *batcher
	m       *metrics
	events  incident.Publisher // throttled
	records recordDB
	// running counts deliveries under way; stopping is set when Stop
	// cuts them off.
	running  atomic.Int64
	stopping atomic.Bool

	queuesMu sync.Mutex
	queues   map[string]bool // the upstreams' queues being worked

	cutMu sync.Mutex
	cut   []int64 // guarded by cutMu; deliveries cut off by the end of the grace

	// writeErr is the last enqueue's failure to write, nil once one
	// succeeds; while it stands, Ping proves the store can write again.
	writeErr atomic.Pointer[error]
	// dir is the embedded store's directory, whose file system Ping checks
	// for room; empty on PostgreSQL.
	dir string
}

func (s *riverStore[TTx]) AddQueue(upstream string, concurrency int) error {
	s.queuesMu.Lock()
	defer s.queuesMu.Unlock()
	if s.queues[upstream] {
		return nil
	}
	if err := s.client.Queues().Add(upstream, river.QueueConfig{MaxWorkers: max(concurrency, 1)}); err != nil {
		return fmt.Errorf("delivering to upstream %s: %w", upstream, err)
	}
	s.queues[upstream] = true
	return nil
}

// countSQL counts jobs by queue and state, with the oldest one's creation
// time in Unix seconds; sqlite and postgres spell the conversion apart.
const (
	countSQLite   = `SELECT queue, state, count(*), CAST(unixepoch(min(created_at)) AS INTEGER) FROM river_job WHERE kind = 'seawall.delivery' GROUP BY queue, state`
	countPostgres = `SELECT queue, state::text, count(*), extract(epoch from min(created_at))::bigint FROM river_job WHERE kind = 'seawall.delivery' GROUP BY queue, state`
)

// scanCounts reads countSQL's rows, however the database returns them.
func scanCounts(next func() bool, scan func(...any) error) ([]Count, error) {
	var out []Count
	for next() {
		var queue, state string
		var n, oldest int64
		if err := scan(&queue, &state, &n, &oldest); err != nil {
			return nil, err
		}
		out = append(out, Count{Upstream: queue, State: fromRiver(rivertype.JobState(state), false), N: int(n), Oldest: time.Unix(oldest, 0)})
	}
	return out, nil
}

// OpenSQLite opens (creating if needed) the embedded store at path. The
// database is in WAL mode; with cfg.NoFsync false, synchronous=FULL, so an
// enqueue is on disk before it returns.
func OpenSQLite(ctx context.Context, path string, cfg Config, d Deliverer) (Store, error) {
	sync := "FULL"
	if cfg.NoFsync {
		sync = "NORMAL" // WAL: a commit survives a crash of the process, not of the machine
	}
	// The store holds request bodies and headers: readable by its owner
	// only. SQLite gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		_ = f.Close()
	}
	connector, err := sqlite.NewConnector("file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening job store %s: %w", path, err)
	}
	db := sql.OpenDB(stmtCacheConnector{Connector: connector, size: stmtCacheSize})
	db.SetMaxOpenConns(1) // SQLite allows one writer; River's driver asks for one connection
	s, err := open(ctx, riversqlite.New(db), cfg, d, true)
	if err != nil {
		_ = db.Close()
		return nil, sqliteOpenError(path, err)
	}
	s.close = func() { _ = db.Close() }
	s.dir = filepath.Dir(path)
	s.records = recordDB{sql: recordsSQLite,
		exec: func(ctx context.Context, q string, args ...any) error {
			_, err := db.ExecContext(ctx, q, args...)
			return err
		},
		query: func(ctx context.Context, q string, args ...any) ([]Record, error) {
			rows, err := db.QueryContext(ctx, q, args...)
			if err != nil {
				return nil, err
			}
			defer func() { _ = rows.Close() }()
			return scanRecords(rows.Next, rows.Scan, rows.Err)
		}}
	if err := s.records.exec(ctx, recordsDDL); err != nil {
		s.close()
		return nil, fmt.Errorf("creating the records table: %w", err)
	}
	s.query = func(ctx context.Context) ([]Count, error) {
		rows, err := db.QueryContext(ctx, countSQLite)
		if err != nil {
			return nil, err
		}
		defer func() { _ = rows.Close() }()
		out, err := scanCounts(rows.Next, rows.Scan)
		return out, errors.Join(err, rows.Err())
	}
	return s, nil
}

// River indexes a job's args and metadata with GIN, whose inserts go to
// a pending list that the inserting session merges into the index once
// the list passes gin_pending_list_limit (4MB by default). Under a steady
// stream of enqueues that made one batch in every 4MB of args (about
// every 0.7 s at 13k jobs/s) take 60-70 ms instead of 4, and it was the
// (e) row's p99. Seawall's sessions use the smallest list PostgreSQL
// allows, so each merge is small: p99 61 → 10 ms at the same throughput
// (docs/benchmarks.md). A value in the store URL's options is kept.
const (
	ginPendingParam = "gin_pending_list_limit"
	ginPendingLimit = "64kB"
)

// OpenPostgres connects to the PostgreSQL store at url.
func OpenPostgres(ctx context.Context, url string, cfg Config, d Deliverer) (Store, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("job store URL: %w", err)
	}
	if cfg.NoFsync {
		// The server acknowledges before its WAL is flushed.
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	if _, set := pc.ConnConfig.RuntimeParams[ginPendingParam]; !set {
		pc.ConnConfig.RuntimeParams[ginPendingParam] = ginPendingLimit
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to the job store: %w", err)
	}
	unlock, err := lockSchema(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	defer unlock()
	fail := func(err error) (Store, error) {
		unlock() // before Close, which waits for the lock's connection
		pool.Close()
		return nil, err
	}
	s, err := open[pgx.Tx](ctx, riverpgxv5.New(pool), cfg, d, false)
	if err != nil {
		return fail(err)
	}
	s.close = pool.Close
	s.records = recordDB{sql: recordsPostgres,
		exec: func(ctx context.Context, q string, args ...any) error {
			_, err := pool.Exec(ctx, q, args...)
			return err
		},
		query: func(ctx context.Context, q string, args ...any) ([]Record, error) {
			rows, err := pool.Query(ctx, q, args...)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return scanRecords(rows.Next, rows.Scan, rows.Err)
		}}
	if err := s.records.exec(ctx, recordsDDL); err != nil {
		return fail(fmt.Errorf("creating the records table: %w", err))
	}
	s.query = func(ctx context.Context) ([]Count, error) {
		rows, err := pool.Query(ctx, countPostgres)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out, err := scanCounts(rows.Next, rows.Scan)
		return out, errors.Join(err, rows.Err())
	}
	return s, nil
}

// schemaLock is the PostgreSQL advisory lock that replicas starting at
// once take in turn to migrate the store and make its tables: made
// concurrently, they collide in the catalog ("duplicate key value
// violates unique constraint pg_type_typname_nsp_index").
const schemaLock = 0x5ea3a11 // "seawall"

// lockSchema takes the schema lock on a connection of its own, until the
// returned func (which may be called again) releases it.
func lockSchema(ctx context.Context, pool *pgxpool.Pool) (unlock func(), err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the job store: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", schemaLock); err != nil {
		conn.Release()
		return nil, fmt.Errorf("locking the job store's schema: %w", err)
	}
	return sync.OnceFunc(func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", schemaLock)
		conn.Release()
	}), nil
}

// newestSchema is the newest schema version the store has been migrated
// to, or 0 when it cannot tell (a new store; Migrate reports the rest).
func newestSchema[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) int {
	exec := driver.GetExecutor()
	if ok, err := exec.TableExists(ctx, &riverdriver.TableExistsParams{Table: "river_migration"}); err != nil || !ok {
		return 0
	}
	ms, err := exec.MigrationGetByLine(ctx, &riverdriver.MigrationGetByLineParams{Line: riverdriver.MigrationLineMain})
	if err != nil {
		return 0
	}
	newest := 0
	for _, m := range ms {
		newest = max(newest, m.Version)
	}
	return newest
}

func open[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config, d Deliverer, pollOnly bool) (*riverStore[TTx], error) {
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, err
	}
	all := m.AllVersions()
	if have, know := newestSchema(ctx, driver), all[len(all)-1].Version; have > know {
		return nil, fmt.Errorf("%w: its schema is at version %d, and this build knows versions up to %d; run the newer Seawall, or point jobs.store elsewhere", ErrSchemaNewer, have, know)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrating the job store: %w", err)
	}
	s := &riverStore[TTx]{cfg: cfg, m: newMetrics(), queues: map[string]bool{}, events: incident.Discard}
	if cfg.Events != nil {
		s.events = incident.Throttle(cfg.Events, time.Minute)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker[TTx]{d: d, s: s})
	river.AddWorker(workers, &callbackWorker[TTx]{s: s})
	queues := map[string]river.QueueConfig{}
	for name, n := range cfg.Upstreams {
		queues[name] = river.QueueConfig{MaxWorkers: max(n, 1)}
		s.queues[name] = true
	}
	if cfg.Notifier != nil {
		queues[callbackQueue] = river.QueueConfig{MaxWorkers: cmp.Or(cfg.CallbackConcurrency, 4)}
	}
	rc := &river.Config{
		Workers:              workers,
		MaxAttempts:          cfg.MaxAttempts,
		RetryPolicy:          schedulePolicy(cfg.Schedule),
		RescueStuckJobsAfter: max(cfg.VisibilityTimeout, cfg.AttemptTimeout+time.Second),
		FetchPollInterval:    cfg.PollInterval,
		// River fetches at most a queue's worker count per fetch, then waits
		// this long: 100ms (its default) caps 16 workers at 160 deliveries/s.
		FetchCooldown: min(cfg.PollInterval, 5*time.Millisecond),
		// Without a job timeout River never rescues a job left running by a
		// killed process, so every attempt has one.
		JobTimeout: cmp.Or(cfg.AttemptTimeout, time.Minute),
		PollOnly:   pollOnly,
		Logger:     engineLogger(cfg.Logger),
		// Finished jobs keep their results and idempotency keys this long;
		// zero keeps River's default.
		CompletedJobRetentionPeriod: cfg.Retention,
		CancelledJobRetentionPeriod: cfg.Retention,
		DiscardedJobRetentionPeriod: cfg.DeadRetention,
	}
	if len(queues) > 0 {
		rc.Queues = queues
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("starting the job store: %w", err)
	}
	s.client = client
	s.batcher = newBatcher(s.cfg.Routines, s.insertMany)
	if cfg.Metrics != nil {
		if err := s.m.register(cfg.Metrics, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// mayHaveCommitted reports whether a failed write may have been committed
// all the same: the connection to PostgreSQL broke while the write was
// under way, so that its COMMIT may have been carried out with its answer
// lost. Not when the server refused the write (a PostgreSQL error rolls
// the transaction back) or no connection could be made. pgx's SafeToRetry
// is not enough: a COMMIT whose answer was lost to a reset comes back as
// "conn closed", which it calls safe. SQLite's errors are never of the
// network, and say what happened.
func mayHaveCommitted(err error) bool {
	var pgErr *pgconn.PgError
	var connectErr *pgconn.ConnectError
	if errors.As(err, &pgErr) || errors.As(err, &connectErr) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, pgconn.ErrConnClosed)
}

// uniqueStates are the states in which a job holds its idempotency key:
// every state but canceled, so a key dedupes until its job is purged.
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
	rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// Enqueue hands d to the batcher, which writes it with whatever other
// enqueues are waiting in one transaction (group commit), and returns once
// that transaction has committed.
func (s *riverStore[TTx]) Enqueue(ctx context.Context, d Delivery) (Job, bool, error) {
	if d.IdempotencyKey == "" && d.DeliveryKey == "" {
		d.DeliveryKey = NewDeliveryKey()
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.enqueueTimeout())
	defer cancel()
	return s.batcher.enqueue(ctx, d)
}

// insertMany writes a batch in one transaction; results are in batch order.
func (s *riverStore[TTx]) insertMany(ctx context.Context, ds []Delivery) ([]inserted, error) {
	params := make([]river.InsertManyParams, len(ds))
	for i, d := range ds {
		args, err := storedFrom(d)
		if err != nil {
			return nil, fmt.Errorf("encoding job: %w", err)
		}
		opts := &river.InsertOpts{Queue: d.Upstream, MaxAttempts: s.cfg.MaxAttempts}
		if d.IdempotencyKey != "" {
			opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByQueue: true, ByState: uniqueStates}
		}
		params[i] = river.InsertManyParams{Args: args, InsertOpts: opts}
	}
	start := time.Now()
	res, err := s.client.InsertMany(ctx, params)
	switch {
	case err == nil:
		s.writeErr.Store(nil)
	case ctx.Err() == nil: // a store that failed to write, not one slow to answer
		s.writeErr.Store(&err)
	}
	if err != nil && mayHaveCommitted(err) {
		return nil, fmt.Errorf("enqueueing: %w: %w", ErrOutcomeUnknown, err)
	}
	if err != nil {
		return nil, fmt.Errorf("enqueueing: %w", err)
	}
	s.m.committed(len(ds), time.Since(start))
	out := make([]inserted, len(res))
	for i, r := range res {
		out[i].existing = r.UniqueSkippedAsDuplicate
		if out[i].existing {
			// Another request's job: its own delivery, token and
			// fingerprint, read back from the store.
			out[i].job, out[i].err = toJob(r.Job)
			continue
		}
		// A job just written holds the delivery it was written from:
		// decoding its stored copy again cost an enqueue a JSON parse.
		out[i].job = jobState(r.Job)
		out[i].job.Delivery = ds[i]
	}
	return out, nil
}

// bounded runs op within the store's deadline (jobs.enqueue_timeout), so
// that a hung store answers a read or an operator's change with
// ErrStoreTimeout rather than hold its caller.
func (s *riverStore[TTx]) bounded(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.enqueueTimeout())
	defer cancel()
	err := op(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrStoreTimeout, err)
	}
	return err
}

func (s *riverStore[TTx]) Get(ctx context.Context, id int64) (j Job, err error) {
	err = s.bounded(ctx, func(ctx context.Context) error {
		j, err = s.row(s.client.JobGet(ctx, id))
		return err
	})
	return j, err
}

// Ping checks that the store answers within the enqueue timeout, and that
// it can write: the embedded store's file system has room, and after an
// enqueue failed to write, a probe write succeeds.
func (s *riverStore[TTx]) Ping(ctx context.Context) error {
	err := s.bounded(ctx, func(ctx context.Context) error {
		_, err := s.client.JobGet(ctx, 0)
		if errors.Is(err, river.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if free, ok := freeBytes(s.dir); ok && free < minFreeBytes {
		return fmt.Errorf("%w: %d bytes free on the file system of %s", ErrCannotWrite, free, s.dir)
	}
	if p := s.writeErr.Load(); p != nil {
		if err := s.bounded(ctx, s.probeWrite); err != nil {
			return fmt.Errorf("%w: the last enqueue failed (%w), and so does a probe write: %w", ErrCannotWrite, *p, err)
		}
		s.writeErr.CompareAndSwap(p, nil)
	}
	return nil
}

// probeWrite writes, and removes, one small record: a write the store
// must commit, as an enqueue must.
func (s *riverStore[TTx]) probeWrite(ctx context.Context) error {
	if err := s.PutRecords(ctx, probeKind, []Record{{ID: 1, Body: []byte("ready?")}}); err != nil {
		return err
	}
	return s.DeleteRecord(ctx, probeKind, 1)
}

func (s *riverStore[TTx]) Cancel(ctx context.Context, id int64) (j Job, err error) {
	if _, err := s.Get(ctx, id); err != nil {
		return Job{}, err
	}
	err = s.bounded(ctx, func(ctx context.Context) error {
		j, err = s.row(s.client.JobCancel(ctx, id))
		return err
	})
	return j, err
}

func (s *riverStore[TTx]) Retry(ctx context.Context, id int64) (j Job, err error) {
	if _, err := s.Get(ctx, id); err != nil {
		return Job{}, err
	}
	err = s.bounded(ctx, func(ctx context.Context) error {
		j, err = s.row(s.client.JobRetry(ctx, id))
		return err
	})
	return j, err
}

func (s *riverStore[TTx]) row(r *rivertype.JobRow, err error) (Job, error) {
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, err
	}
	if r.Kind != (Delivery{}).Kind() {
		return Job{}, ErrNotFound // a callback's bookkeeping, not a job of the app's
	}
	return toJob(r)
}

func (s *riverStore[TTx]) List(ctx context.Context, f Filter) ([]Job, error) {
	p := river.NewJobListParams().First(min(cmpOr(f.Limit, 100), MaxListLimit)).OrderBy(river.JobListOrderByID, river.SortOrderAsc).
		Kinds((Delivery{}).Kind())
	if f.Upstream != "" {
		p = p.Queues(f.Upstream)
	}
	if f.State != "" {
		p = p.States(riverStates(f.State)...)
	}
	if f.AfterID > 0 {
		p = p.Where("id > @after", river.NamedArgs{"after": f.AfterID})
	}
	var res *river.JobListResult
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		res, err = s.client.JobList(ctx, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(res.Jobs))
	for _, r := range res.Jobs {
		j, err := toJob(r)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (s *riverStore[TTx]) Counts(ctx context.Context) ([]Count, error) {
	var rows []Count
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		rows, err = s.query(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	// River's states map onto fewer of Seawall's: add them up.
	type key struct {
		u  string
		st State
	}
	at := map[key]int{}
	var out []Count
	for _, c := range rows {
		k := key{c.Upstream, c.State}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, c)
			continue
		}
		out[i].N += c.N
		if c.Oldest.Before(out[i].Oldest) {
			out[i].Oldest = c.Oldest
		}
	}
	return out, nil
}

// Start begins delivering. The end of ctx does not cut deliveries in
// flight: Stop does, at the end of its grace.
func (s *riverStore[TTx]) Start(ctx context.Context) error {
	return s.client.Start(context.WithoutCancel(ctx))
}

// Stop finishes the enqueues in flight, then stops taking jobs and lets
// the deliveries in flight finish until ctx ends. Those still running
// then are cut off and requeued without spending an attempt (the worker
// snoozes them), and Stop says how many. Jobs not finished stay queued
// for the next start.
func (s *riverStore[TTx]) Stop(ctx context.Context) error {
	s.batcher.close()
	err := s.client.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		s.stopping.Store(true)
		cut := s.running.Load()
		// Time for the cut deliveries to be recorded as snoozed.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = s.client.StopAndCancel(cctx)
		if err == nil {
			err = s.firstAtNextStart(cctx)
		}
		if err == nil {
			err = fmt.Errorf("%w: %d deliveries still running at the end of the grace were cut off and requeued without spending an attempt", ErrCutOff, cut)
		}
	}
	if s.close != nil {
		s.close()
	}
	return err
}

// firstAtNextStart puts the deliveries cut off by the end of the grace at
// the head of their queues: River requeues a snoozed job as scheduled now,
// behind every job accepted before; scheduled again at its acceptance, it
// is the first fetched at the next start, as it was when it was cut.
func (s *riverStore[TTx]) firstAtNextStart(ctx context.Context) error {
	s.cutMu.Lock()
	ids := s.cut
	s.cut = nil
	s.cutMu.Unlock()
	for _, id := range ids {
		if err := s.records.exec(ctx, s.records.sql.requeueFirst, id); err != nil {
			return fmt.Errorf("putting cut delivery %d first: %w", id, err)
		}
	}
	return nil
}

// ErrCutOff is returned by Stop when deliveries outlasted its grace.
var ErrCutOff = errors.New("deliveries cut off")

// worker hands River's jobs to the Deliverer, keeps deferred jobs'
// results, dead-letters jobs past their age and queues their callbacks.
type worker[TTx any] struct {
	river.WorkerDefaults[storedArgs]
	d Deliverer
	s *riverStore[TTx]
}

func (w *worker[TTx]) Work(ctx context.Context, job *river.Job[storedArgs]) error {
	maxAge, m := w.s.cfg.MaxAge, w.s.m
	if maxAge > 0 && time.Since(job.CreatedAt) > maxAge {
		// River dead-letters a failed job on its last attempt: make this one it.
		job.MaxAttempts = job.Attempt
		w.s.deadLettered(job, fmt.Sprintf("not delivered within max_age %s", maxAge))
		return errors.Join(fmt.Errorf("not delivered within max_age %s", maxAge), w.s.finished(job.ID, job.Args.delivery))
	}
	w.s.running.Add(1)
	res, err := w.d.Deliver(ctx, job.ID, job.Attempt, job.Args.delivery)
	w.s.running.Add(-1)
	if err != nil && ctx.Err() != nil && w.s.stopping.Load() {
		// Cut off by the end of the shutdown grace: not the upstream's
		// failure, so no attempt is spent; it runs first at the next start.
		m.deliveries.WithLabelValues(job.Queue, "interrupted").Inc()
		w.s.cutMu.Lock()
		w.s.cut = append(w.s.cut, job.ID)
		w.s.cutMu.Unlock()
		return river.JobSnooze(0)
	}
	if res != nil && job.Args.delivery.Deferred {
		if rerr := river.RecordOutput(ctx, res); rerr != nil {
			return fmt.Errorf("keeping the result: %w", rerr)
		}
	}
	var wait *WaitError
	switch {
	case errors.As(err, &wait):
		m.deliveries.WithLabelValues(job.Queue, "waited").Inc()
		return river.JobSnooze(max(wait.After, 0))
	case err == nil:
		m.deliveries.WithLabelValues(job.Queue, "succeeded").Inc()
		// Should its callback fail to queue, the job is delivered again
		// rather than its callback lost; every attempt carries one key.
		return w.s.finished(job.ID, job.Args.delivery)
	case ctx.Err() != nil:
		return err // stopping or timed out: River requeues it
	}
	m.deliveries.WithLabelValues(job.Queue, "failed").Inc()
	if job.Attempt >= job.MaxAttempts {
		w.s.deadLettered(job, fmt.Sprintf("%d attempts failed, the last: %v", job.Attempt, err))
		return errors.Join(err, w.s.finished(job.ID, job.Args.delivery))
	}
	return err
}

// deadLettered counts a job given up, and publishes the event.
func (s *riverStore[TTx]) deadLettered(job *river.Job[storedArgs], why string) {
	s.m.dead.WithLabelValues(job.Queue).Inc()
	s.events.Publish(incident.Event{Type: incident.JobsDeadLettered, Upstream: job.Queue, Severity: incident.Warning,
		Summary:  fmt.Sprintf("job %d (%s %s) dead-lettered: %s", job.ID, job.Args.delivery.Method, upstream.Truncate(strings.SplitN(job.Args.delivery.Path, "?", 2)[0], 120), upstream.Truncate(why, 300)),
		Evidence: map[string]any{"job": job.ID, "attempts": job.Attempt}})
}

// schedulePolicy spaces retries by the configured schedule.
type schedulePolicy Schedule

func (p schedulePolicy) NextRetry(job *rivertype.JobRow) time.Time {
	n := max(len(job.Errors), 1) // failures so far, this one included
	if len(p.Delays) > 0 {
		return time.Now().Add(p.Delays[min(n, len(p.Delays))-1])
	}
	ceiling := p.MaxDelay
	if n < 62 {
		if d := p.BaseDelay << (n - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return time.Now()
	}
	return time.Now().Add(rand.N(ceiling + 1))
}

func toJob(r *rivertype.JobRow) (Job, error) {
	j := jobState(r)
	if err := decodeArgs(r.EncodedArgs, &j.Delivery); err != nil {
		return Job{}, fmt.Errorf("job %d: %w", r.ID, err)
	}
	if out := r.Output(); len(out) > 0 {
		j.Result = &Result{}
		if err := json.Unmarshal(out, j.Result); err != nil {
			return Job{}, fmt.Errorf("job %d result: %w", r.ID, err)
		}
	}
	return j, nil
}

// jobState is a row's job without its delivery and result: its id,
// attempts, times and state.
func jobState(r *rivertype.JobRow) Job {
	j := Job{ID: r.ID, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt, NextAt: r.ScheduledAt, FinalizedAt: r.FinalizedAt}
	if len(r.Errors) > 0 {
		j.LastError = r.Errors[len(r.Errors)-1].Error
	}
	j.State = fromRiver(r.State, r.Attempt > 0 && len(r.Errors) > 0)
	return j
}

// fromRiver names River's state as Seawall's; a job waiting after a failed
// attempt is retrying.
func fromRiver(s rivertype.JobState, failedBefore bool) State {
	switch s {
	case rivertype.JobStateRunning:
		return Running
	case rivertype.JobStateCompleted:
		return Succeeded
	case rivertype.JobStateDiscarded:
		return Dead
	case rivertype.JobStateCancelled:
		return Canceled
	case rivertype.JobStateRetryable:
		return Retrying
	}
	if failedBefore {
		return Retrying
	}
	return Queued
}

func riverStates(s State) []rivertype.JobState {
	switch s {
	case Running:
		return []rivertype.JobState{rivertype.JobStateRunning}
	case Succeeded:
		return []rivertype.JobState{rivertype.JobStateCompleted}
	case Dead:
		return []rivertype.JobState{rivertype.JobStateDiscarded}
	case Canceled:
		return []rivertype.JobState{rivertype.JobStateCancelled}
	case Retrying:
		return []rivertype.JobState{rivertype.JobStateRetryable}
	default:
		return []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStatePending}
	}
}

func cmpOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Open opens the store a DSN names: "postgres://…" or "postgresql://…" for
// PostgreSQL, otherwise a SQLite file path (an optional "sqlite:" prefix is
// dropped).
func Open(ctx context.Context, dsn string, cfg Config, d Deliverer) (Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn, cfg, d)
	}
	return OpenSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), cfg, d)
}

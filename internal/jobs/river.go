package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

// riverStore implements Store on River, for either database.
type riverStore[TTx any] struct {
	client *river.Client[TTx]
	cfg    Config
	close  func()
}

// OpenSQLite opens (creating if needed) the embedded store at path. The
// database is in WAL mode with synchronous=FULL: an enqueue is on disk
// before it returns.
func OpenSQLite(ctx context.Context, path string, cfg Config, d Deliverer) (Store, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening job store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // SQLite allows one writer; River's driver asks for one connection
	s, err := open(ctx, riversqlite.New(db), cfg, d, true)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.close = func() { _ = db.Close() }
	return s, nil
}

// OpenPostgres connects to the PostgreSQL store at url.
func OpenPostgres(ctx context.Context, url string, cfg Config, d Deliverer) (Store, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connecting to the job store: %w", err)
	}
	s, err := open[pgx.Tx](ctx, riverpgxv5.New(pool), cfg, d, false)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.close = pool.Close
	return s, nil
}

func open[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config, d Deliverer, pollOnly bool) (*riverStore[TTx], error) {
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrating the job store: %w", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker{d: d})
	queues := map[string]river.QueueConfig{}
	for name, n := range cfg.Upstreams {
		queues[name] = river.QueueConfig{MaxWorkers: max(n, 1)}
	}
	rc := &river.Config{
		Workers:              workers,
		MaxAttempts:          cfg.MaxAttempts,
		RetryPolicy:          schedulePolicy(cfg.Schedule),
		RescueStuckJobsAfter: max(cfg.VisibilityTimeout, cfg.AttemptTimeout+time.Second),
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        min(cfg.PollInterval, 100*time.Millisecond),
		// Without a job timeout River never rescues a job left running by a
		// killed process, so every attempt has one.
		JobTimeout: cmp.Or(cfg.AttemptTimeout, time.Minute),
		PollOnly:   pollOnly,
		Logger:     discardLogger(),
	}
	if len(queues) > 0 {
		rc.Queues = queues
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("starting the job store: %w", err)
	}
	return &riverStore[TTx]{client: client, cfg: cfg}, nil
}

func (s *riverStore[TTx]) Enqueue(ctx context.Context, d Delivery) (Job, bool, error) {
	opts := &river.InsertOpts{Queue: d.Upstream, MaxAttempts: s.cfg.MaxAttempts}
	if d.IdempotencyKey != "" {
		opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByQueue: true, ByPeriod: s.cfg.Retention}
	}
	res, err := s.client.Insert(ctx, d, opts)
	if err != nil {
		return Job{}, false, fmt.Errorf("enqueueing: %w", err)
	}
	j, err := toJob(res.Job)
	return j, res.UniqueSkippedAsDuplicate, err
}

func (s *riverStore[TTx]) Get(ctx context.Context, id int64) (Job, error) {
	return s.row(s.client.JobGet(ctx, id))
}

func (s *riverStore[TTx]) Cancel(ctx context.Context, id int64) (Job, error) {
	return s.row(s.client.JobCancel(ctx, id))
}

func (s *riverStore[TTx]) Retry(ctx context.Context, id int64) (Job, error) {
	return s.row(s.client.JobRetry(ctx, id))
}

func (s *riverStore[TTx]) row(r *rivertype.JobRow, err error) (Job, error) {
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, err
	}
	return toJob(r)
}

func (s *riverStore[TTx]) List(ctx context.Context, f Filter) ([]Job, error) {
	p := river.NewJobListParams().First(min(cmpOr(f.Limit, 100), MaxListLimit)).OrderBy(river.JobListOrderByID, river.SortOrderAsc)
	if f.Upstream != "" {
		p = p.Queues(f.Upstream)
	}
	if f.State != "" {
		p = p.States(riverStates(f.State)...)
	}
	if f.AfterID > 0 {
		p = p.Where("id > @after", river.NamedArgs{"after": f.AfterID})
	}
	res, err := s.client.JobList(ctx, p)
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

func (s *riverStore[TTx]) Start(ctx context.Context) error { return s.client.Start(ctx) }

func (s *riverStore[TTx]) Stop(ctx context.Context) error {
	err := s.client.Stop(ctx)
	if s.close != nil {
		s.close()
	}
	return err
}

// worker hands River's jobs to the Deliverer.
type worker struct {
	river.WorkerDefaults[Delivery]
	d Deliverer
}

func (w *worker) Work(ctx context.Context, job *river.Job[Delivery]) error {
	err := w.d.Deliver(ctx, job.ID, job.Attempt, job.Args)
	var wait *WaitError
	if errors.As(err, &wait) {
		return river.JobSnooze(max(wait.After, 0))
	}
	return err
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
	j := Job{ID: r.ID, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt, NextAt: r.ScheduledAt, FinalizedAt: r.FinalizedAt}
	if len(r.Errors) > 0 {
		j.LastError = r.Errors[len(r.Errors)-1].Error
	}
	switch r.State {
	case rivertype.JobStateRunning:
		j.State = Running
	case rivertype.JobStateCompleted:
		j.State = Succeeded
	case rivertype.JobStateDiscarded:
		j.State = Dead
	case rivertype.JobStateCancelled:
		j.State = Canceled
	case rivertype.JobStateRetryable:
		j.State = Retrying
	default:
		j.State = Queued
		if r.Attempt > 0 && len(r.Errors) > 0 {
			j.State = Retrying
		}
	}
	if err := decodeArgs(r.EncodedArgs, &j.Delivery); err != nil {
		return Job{}, fmt.Errorf("job %d: %w", r.ID, err)
	}
	return j, nil
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

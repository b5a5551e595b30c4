package jobs

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/routine"
)

// Delivery is an accepted request to deliver to an upstream.
type Delivery struct {
	Upstream string              `json:"upstream"`
	Method   string              `json:"method"`
	Path     string              `json:"path"` // upstream-relative, escaped, with the query
	Header   map[string][]string `json:"header,omitempty"`
	Body     []byte              `json:"body,omitempty"`
	// IdempotencyKey deduplicates enqueues within the retention window and
	// is sent with every attempt; empty means DeliveryKey is sent instead.
	// A key is scoped to the upstream (the queue) and to Scope.
	IdempotencyKey string `json:"idempotency_key,omitempty" river:"unique"`
	// Scope is the method, the path without its query and the caller
	// (ScopeOf): the same key on another method or path, or from another
	// caller, is another job.
	Scope string `json:"scope,omitempty" river:"unique"`
	// Fingerprint identifies the request a key was first used with; the
	// same key and scope with another fingerprint is refused.
	Fingerprint string `json:"fingerprint,omitempty"`
	// RequestID is the Seawall-Request-Id of the request that was
	// accepted; every delivery carries it, so that one id follows the
	// request from the app to the vendor.
	RequestID string `json:"request_id,omitempty"`
	// Callback, when set, receives a signed POST when the job ends.
	Callback string `json:"callback,omitempty"`
	// Deferred keeps the upstream's response for the app to fetch.
	Deferred bool `json:"deferred,omitempty"`
	// DeliveryKey is the Idempotency-Key every attempt of a job sent
	// without one carries: random (NewDeliveryKey), stored with the job so
	// that it is the same on every attempt and after a crash, and never
	// derived from the store's sequence, so that two installations (or a
	// new data directory) never send a vendor the same key for different
	// jobs. Jobs stored before it existed have none, and keep the key they
	// were delivered with (legacyDeliveryKey).
	DeliveryKey string `json:"delivery_key,omitempty"`
	// Token is the random part of the job's public id (PublicID): the
	// app's handle on its job, which no one else can guess. Jobs accepted
	// before it existed have none and are reachable by operators only.
	Token string `json:"token,omitempty"`
}

// Result is an upstream's response to a delivery, kept for deferred jobs.
type Result struct {
	Status int                 `json:"status"`
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
	// Truncated says Body was cut at the configured limit.
	Truncated bool `json:"truncated,omitempty"`
}

// Kind implements river.JobArgs.
func (Delivery) Kind() string { return "seawall.delivery" }

// State is a job's state as Seawall reports it.
type State string

// The job states.
const (
	Queued    State = "queued"
	Running   State = "running"
	Retrying  State = "retrying"
	Succeeded State = "succeeded"
	Dead      State = "dead"
	Canceled  State = "canceled"
)

// Job is a delivery with its state.
type Job struct {
	ID          int64      `json:"id"`
	State       State      `json:"state"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	NextAt      time.Time  `json:"next_at"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Delivery    Delivery   `json:"delivery"`
	// Result is the last upstream response of a deferred job, if any.
	Result *Result `json:"-"`
}

// Finished reports whether the job has reached a final state.
func (j Job) Finished() bool { return j.State == Succeeded || j.State == Dead || j.State == Canceled }

// Filter selects jobs to list.
type Filter struct {
	Upstream string // empty: all
	State    State  // empty: all
	Limit    int    // default 100, at most MaxListLimit
	AfterID  int64  // paging: jobs with a larger id
}

// MaxListLimit is the most jobs one List returns; page with AfterID.
const MaxListLimit = 1000

// ErrNotFound is returned for an unknown job id.
var ErrNotFound = errors.New("job not found")

// WaitError asks for a job to be tried again after After without spending
// an attempt: the upstream's breaker is open, or it asked to pause.
type WaitError struct{ After time.Duration }

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting %s without spending an attempt", e.After)
}

// Deliverer makes one delivery attempt. A nil error is success; a
// *WaitError defers the job without spending an attempt; any other error
// spends one, and the job is retried on the schedule or dead-lettered. The
// upstream's response, when there was one, is returned with either, and
// kept for deferred jobs.
type Deliverer interface {
	Deliver(ctx context.Context, id int64, attempt int, d Delivery) (*Result, error)
}

// Notifier sends a finished job's callback. An error retries it later.
type Notifier interface {
	Notify(ctx context.Context, j Job) error
}

// Store is the durable job store.
type Store interface {
	// Enqueue stores d durably before returning. existing is true when a
	// job with the same upstream and idempotency key was already there.
	Enqueue(ctx context.Context, d Delivery) (job Job, existing bool, err error)
	Get(ctx context.Context, id int64) (Job, error)
	// Ping checks that the store answers, within EnqueueTimeout.
	Ping(ctx context.Context) error
	List(ctx context.Context, f Filter) ([]Job, error)
	// Cancel stops a job that has not finished.
	Cancel(ctx context.Context, id int64) (Job, error)
	// Retry makes a finished job (dead, canceled, succeeded) run again now.
	Retry(ctx context.Context, id int64) (Job, error)
	// Counts reports how many jobs each upstream has in each state, and
	// when its oldest unfinished job was accepted.
	Counts(ctx context.Context) ([]Count, error)
	// AddQueue starts delivering an upstream added since the store was
	// opened, with concurrency workers; one already worked is left as is.
	AddQueue(upstream string, concurrency int) error
	// Start begins delivering; Stop stops, leaving unfinished jobs queued.
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Schedule is when to retry: an explicit list of delays, or capped
// exponential backoff with full jitter when Delays is empty.
type Schedule struct {
	Delays    []time.Duration
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// Config tunes a store.
type Config struct {
	// Routines starts the store's own goroutines (the enqueue batcher);
	// nil runs them untracked.
	Routines *routine.Group
	// NoFsync acknowledges an enqueue before its commit is flushed to disk
	// (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off): it
	// survives a crash of Seawall, but not of the machine. False, the
	// default, waits for the flush.
	NoFsync bool
	// Upstreams lists the queues to work, with their worker concurrency.
	Upstreams map[string]int
	// MaxAttempts dead-letters a job after this many failed attempts.
	MaxAttempts int
	// MaxAge dead-letters a job not delivered this long after it was
	// accepted; zero means no limit.
	MaxAge time.Duration
	// Schedule spaces retries.
	Schedule Schedule
	// Retention is how long succeeded and canceled jobs, with their
	// results and idempotency keys, are kept after they finish.
	Retention time.Duration
	// DeadRetention is how long dead jobs are kept for inspection and replay.
	DeadRetention time.Duration
	// EnqueueTimeout bounds how long an enqueue waits for its commit, and
	// a read for its answer, before ErrStoreTimeout. Default 5s.
	EnqueueTimeout time.Duration
	// AttemptTimeout bounds one delivery attempt.
	AttemptTimeout time.Duration
	// VisibilityTimeout returns a running job to the queue when its worker
	// has not finished it for this long (a consumer died). It must exceed
	// AttemptTimeout; River looks for such jobs every 30 seconds.
	VisibilityTimeout time.Duration
	// PollInterval is how often idle workers look for new jobs.
	PollInterval time.Duration
	// Notifier sends callbacks; nil means jobs carry none.
	Notifier Notifier
	// CallbackAttempts bounds the tries of one callback. Default 10.
	CallbackAttempts int
	// CallbackConcurrency is how many callbacks are sent at once. Default 4.
	CallbackConcurrency int
	// Metrics, when set, receives the store's metrics.
	Metrics prometheus.Registerer
	// Logger receives the queue engine's own warnings and errors; nil
	// discards them.
	Logger *slog.Logger
	// Events receives a jobs.dead_lettered event per dead letter, at most
	// one a minute per upstream (with how many were held back); nil: none.
	Events incident.Publisher
}

// DefaultEnqueueTimeout is Config.EnqueueTimeout's default.
const DefaultEnqueueTimeout = 5 * time.Second

func (c Config) enqueueTimeout() time.Duration {
	return cmp.Or(c.EnqueueTimeout, DefaultEnqueueTimeout)
}

// Count is how many jobs of one upstream are in one state; Oldest is when
// the oldest of them was accepted.
type Count struct {
	Upstream string
	State    State
	N        int
	Oldest   time.Time
}

// Progress is what both views of a job show: where it stands and when.
type Progress struct {
	State       State      `json:"state"`
	Upstream    string     `json:"upstream"`
	Method      string     `json:"method"`
	Deferred    bool       `json:"deferred,omitempty"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	NextAt      *time.Time `json:"next_at,omitempty"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	// ResponseStatus is the kept response's status, for deferred jobs.
	ResponseStatus int `json:"response_status,omitempty"`
}

// progress returns the job's Progress.
func (j Job) progress() Progress {
	p := Progress{State: j.State, Upstream: j.Delivery.Upstream, Method: j.Delivery.Method, Deferred: j.Delivery.Deferred,
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, CreatedAt: j.CreatedAt, FinalizedAt: j.FinalizedAt, LastError: j.LastError}
	if !j.Finished() {
		next := j.NextAt
		p.NextAt = &next
	}
	if j.Result != nil {
		p.ResponseStatus = j.Result.Status
	}
	return p
}

// View is a job as operators see it, in JSON, on the admin listener and
// in the signed callback to the app that sent it.
type View struct {
	ID int64 `json:"id"`
	// PublicID is the id the app was given (Seawall-Job-Id).
	PublicID       string `json:"public_id,omitempty"`
	Path           string `json:"path"` // with the query
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	Callback       string `json:"callback,omitempty"`
	Progress
}

// View returns the job's operator view.
func (j Job) View() View {
	return View{ID: j.ID, PublicID: j.PublicID(), Path: j.Delivery.Path, IdempotencyKey: j.Delivery.IdempotencyKey,
		Callback: j.Delivery.Callback, Progress: j.progress()}
}

// PublicView is a job as anyone holding its public id sees it: its
// progress, never the request's query, headers, body, idempotency key or
// callback.
type PublicView struct {
	ID   string `json:"id"`
	Path string `json:"path"` // without the query
	Progress
}

// PublicView returns the view for the app.
func (j Job) PublicView() PublicView {
	path, _, _ := strings.Cut(j.Delivery.Path, "?")
	return PublicView{ID: j.PublicID(), Path: path, Progress: j.progress()}
}

// tokenBytes is the randomness of a public id: 128 bits.
const tokenBytes = 16

// NewToken returns a fresh random Delivery.Token.
func NewToken() string {
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// NewDeliveryKey returns a fresh Delivery.DeliveryKey: 128 random bits,
// independent of the public id's token, which is a read capability and is
// never sent to a vendor.
func NewDeliveryKey() string { return "seawall-" + NewToken() }

// legacyDeliveryKey is the key a job stored before DeliveryKey existed
// was delivered with, kept so that a vendor still folds its repeats.
func legacyDeliveryKey(id int64) string { return "seawall-job-" + strconv.FormatInt(id, 10) }

// deliveryKey is the Idempotency-Key each attempt of job id carries.
func (d Delivery) deliveryKey(id int64) string {
	return cmp.Or(d.IdempotencyKey, d.DeliveryKey, legacyDeliveryKey(id))
}

// PublicID is the id the app holds for the job, "<id>-<token>", or empty
// for a job without a token. The store's id makes it quick to look up;
// the token makes it impossible to guess.
func (j Job) PublicID() string {
	if j.Delivery.Token == "" {
		return ""
	}
	return strconv.FormatInt(j.ID, 10) + "-" + j.Delivery.Token
}

// ParsePublicID splits a public id into the store's id and the token.
func ParsePublicID(s string) (id int64, token string, ok bool) {
	num, token, found := strings.Cut(s, "-")
	id, err := strconv.ParseInt(num, 10, 64)
	if !found || err != nil || id <= 0 || len(token) != 2*tokenBytes {
		return 0, "", false
	}
	return id, token, true
}

// ParseID reads an operator's job id: the store's id, or a public id
// (whose token the operator, who may read every job, does not need).
func ParseID(s string) (int64, bool) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil && id > 0 {
		return id, true
	}
	id, _, ok := ParsePublicID(s)
	return id, ok
}

// Owns reports whether token is the job's own, in constant time.
func (j Job) Owns(token string) bool {
	return j.Delivery.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(j.Delivery.Token)) == 1
}

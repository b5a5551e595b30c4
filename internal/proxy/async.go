package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/jobs"
)

// SetJobs gives the proxy its job store, enabling async mode. The store
// delivers through the proxy (Deliver), so it is set after both exist.
func (p *Proxy) SetJobs(s jobs.Store) { p.jobs = s }

// JobsPrefix is where the application reads its jobs' state.
const JobsPrefix = "/_seawall/jobs/"

// serveAsync writes the request durably and answers 202 with the job id.
func (p *Proxy) serveAsync(w http.ResponseWriter, r *http.Request, c *call, path string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		c.err = fmt.Errorf("%w: %w", ErrRequestTooLarge, err)
		p.finish(w, r, c, writeProblem(w, c.err, c.upstream.Name, c.requestID, 0), "seawall")
		return
	}
	h := r.Header.Clone()
	stripHopByHop(h)
	for _, name := range controlHeaders {
		h.Del(name)
	}
	h.Del(requestIDHeader)
	d := jobs.Delivery{Upstream: c.upstream.Name, Method: r.Method, Path: path, Header: h, Body: body,
		IdempotencyKey: r.Header.Get("Idempotency-Key")}
	if r.URL.RawQuery != "" {
		d.Path += "?" + r.URL.RawQuery
	}
	job, existing, err := p.jobs.Enqueue(r.Context(), d)
	if err != nil {
		c.err = fmt.Errorf("%w: %w", ErrQueueUnavailable, err)
		p.finish(w, r, c, writeProblem(w, c.err, c.upstream.Name, c.requestID, 0), "seawall")
		return
	}
	id := strconv.FormatInt(job.ID, 10)
	w.Header().Set("Seawall-Job-Id", id)
	w.Header().Set("Location", JobsPrefix+id)
	w.Header().Set("Seawall-Source", "seawall")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": job.ID, "state": job.State, "existing": existing})
	p.finish(w, r, c, http.StatusAccepted, "seawall")
}

// ErrQueueUnavailable is answered when a job cannot be written durably.
var ErrQueueUnavailable = errors.New("job store unavailable")

// ErrUnknownJob is answered for a job id the store does not have.
var ErrUnknownJob = errors.New("unknown job")

// serveJob answers GET /_seawall/jobs/{id}.
func (p *Proxy) serveJob(w http.ResponseWriter, r *http.Request, rid string) {
	id, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, JobsPrefix), 10, 64)
	if p.jobs == nil || err != nil || r.Method != http.MethodGet {
		writeProblem(w, fmt.Errorf("%w: %s", ErrUnknownJob, truncate(r.URL.Path, 100)), "", rid, 0)
		return
	}
	job, err := p.jobs.Get(r.Context(), id)
	if errors.Is(err, jobs.ErrNotFound) {
		writeProblem(w, fmt.Errorf("%w %d", ErrUnknownJob, id), "", rid, 0)
		return
	}
	if err != nil {
		writeProblem(w, fmt.Errorf("%w: %w", ErrQueueUnavailable, err), "", rid, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": job.ID, "state": job.State, "upstream": job.Delivery.Upstream, "method": job.Delivery.Method,
		"path": job.Delivery.Path, "attempt": job.Attempt, "max_attempts": job.MaxAttempts,
		"created_at": job.CreatedAt, "next_at": job.NextAt, "finalized_at": job.FinalizedAt, "last_error": job.LastError,
	})
}

// Deliver implements jobs.Deliverer: one delivery attempt through the
// upstream's pause gate, limiter and breaker. A refusal by those gates
// defers the job without spending an attempt.
func (p *Proxy) Deliver(ctx context.Context, id int64, _ int, d jobs.Delivery) error {
	u := p.upstreams[d.Upstream]
	if u == nil {
		return fmt.Errorf("%w %q: no longer configured", ErrUnknownUpstream, d.Upstream)
	}
	path, query, _ := strings.Cut(d.Path, "?")
	target := u.target(path, query)
	req, err := http.NewRequestWithContext(ctx, d.Method, target.String(), http.NoBody)
	if err != nil {
		return err
	}
	req.Header = http.Header(d.Header).Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	key := d.IdempotencyKey
	if key == "" {
		key = "seawall-job-" + strconv.FormatInt(id, 10)
	}
	req.Header.Set("Idempotency-Key", key)
	c := &call{upstream: u, target: target, requestID: newRequestID(), client: ctx, start: time.Now()}
	c.route = u.route(req, path)
	u.prepareOutbound(req.Header, c.requestID)
	actx, cancel := context.WithTimeout(withCall(ctx, c), c.route.Overall)
	defer cancel()
	resp, err := u.attempt(req.WithContext(actx), c, bodyOrNil(d.Body), 1)
	var gate gateError
	if errors.As(err, &gate) {
		after, _ := retryAfter(gate.error)
		return &jobs.WaitError{After: max(after, 50*time.Millisecond)}
	}
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, p.maxResp))
	_ = resp.Body.Close()
	if c.route.Retry.RetryableStatus(resp.StatusCode) || resp.StatusCode >= 500 {
		return fmt.Errorf("upstream answered %d", resp.StatusCode)
	}
	return nil
}

// bodyOrNil gives attempt a replayable body, or none.
func bodyOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

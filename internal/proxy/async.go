package proxy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/problem"
	"github.com/seawall/seawall/internal/tracing"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/seawall/seawall/internal/usage"
)

// JobsPrefix is where the application reads its jobs' state.
const JobsPrefix = "/_seawall/jobs/"

// Errors of the job paths.
var (
	// ErrQueueUnavailable is answered when a job cannot be written durably.
	ErrQueueUnavailable = errors.New("job store unavailable")
	// ErrUnknownJob is answered for a job id the store does not have.
	ErrUnknownJob = errors.New("unknown job")
	// ErrCallbackNotAllowed refuses a Seawall-Callback outside the allowed hosts.
	ErrCallbackNotAllowed = errors.New("callback URL not allowed")
	// ErrJobNotFinished is answered for the response of a job still under way.
	ErrJobNotFinished = errors.New("job not finished")
	// ErrKeyReused refuses an Idempotency-Key sent again with another
	// request (IETF Idempotency-Key draft: 422).
	ErrKeyReused = errors.New("idempotency key reused for another request")
	// ErrNoResult is answered for the response of a job that kept none.
	ErrNoResult = errors.New("job has no stored response")
)

// serveAsync writes the request durably and answers 202 with the job id.
func (p *Proxy) serveAsync(w http.ResponseWriter, r *http.Request, c *call, path string, deferred bool) {
	refuse := func(err error) {
		c.err = err
		p.finish(w, r, c, writeProblem(w, err, c.Upstream.Name, c.RequestID, 0), "seawall")
	}
	callback, err := p.checkCallback(r.Header.Get("Seawall-Callback"))
	if err != nil {
		refuse(err)
		return
	}
	app := &appBody{ReadCloser: http.MaxBytesReader(w, r.Body, p.settings().MaxRequest)}
	body, err := io.ReadAll(app)
	if err != nil {
		refuse(app.blame(err, c))
		return
	}
	h := filtered(r.Header, upstream.NotForwarded)
	c.Upstream.ForwardedHeaders(h, r) // as the app's request was when accepted
	delete(h, "Prefer")
	tracing.Inject(r.Context(), h) // the job keeps the trace it was accepted in: its deliveries join it
	d := jobs.Delivery{Upstream: c.Upstream.Name, Method: r.Method, Path: path, Header: h, Body: body,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Callback: callback, Deferred: deferred, RequestID: c.RequestID,
		Token: jobs.NewToken()}
	if r.URL.RawQuery != "" {
		d.Path += "?" + r.URL.RawQuery
	}
	if d.IdempotencyKey != "" {
		d.Scope, d.Fingerprint = jobs.ScopeOf(d.Method, path, c.Route.Caller.Of(r.Header)), jobs.Fingerprint(d.Method, d.Path, body)
	}
	job, existing, err := p.jobs.Enqueue(r.Context(), d)
	if err != nil {
		refuse(p.storeFailed(r, c.RequestID, err))
		return
	}
	if existing && job.Delivery.Fingerprint != d.Fingerprint {
		refuse(fmt.Errorf("%w: key %q was first used with another request to %s %s", ErrKeyReused, truncate(d.IdempotencyKey, 100), d.Method, truncate(path, 200)))
		return
	}
	if existing {
		c.Upstream.Usage.Saved(c.Route.Name, usage.ByDedup) // the vendor is not called twice
	}
	id := publicID(job)
	w.Header().Set("Seawall-Job-Id", id)
	w.Header().Set("Location", JobsPrefix+id)
	problem.FromSeawall(w.Header())
	w.Header().Set("Content-Type", "application/json")
	if deferred && preferAsync(r.Header) {
		w.Header().Set("Preference-Applied", "respond-async")
	}
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "state": job.State, "existing": existing})
	p.finish(w, r, c, http.StatusAccepted, "seawall")
}

// storeFailed logs why the job store failed, for the operator, and
// returns the error the app is answered with, which names no database,
// host or user.
func (p *Proxy) storeFailed(r *http.Request, rid string, err error) error {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return ErrClientGone // the app went away while it waited: not the store's failure
	}
	p.log.LogAttrs(r.Context(), slog.LevelError, "job store unavailable",
		slog.String("request_id", rid), slog.String("path", truncate(r.URL.Path, 512)), slog.String("error", err.Error()))
	if !strings.HasPrefix(r.URL.Path, JobsPrefix) {
		switch {
		case errors.Is(err, jobs.ErrStoreTimeout):
			return fmt.Errorf("%w: the store did not confirm the request in time; it may still be delivered, so resend it with the same Idempotency-Key", ErrQueueUnavailable)
		case errors.Is(err, jobs.ErrOutcomeUnknown):
			return fmt.Errorf("%w: the store's confirmation was lost after the request was written; it may have been accepted and may still be delivered, so resend it with the same Idempotency-Key", ErrQueueUnavailable)
		}
	}
	return fmt.Errorf("%w: the request was not accepted", ErrQueueUnavailable)
}

// checkCallback returns the callback URL if it is absent or allowed.
func (p *Proxy) checkCallback(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		return "", fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrCallbackNotAllowed, truncate(raw, 200))
	case !p.ups.CallbackAllowed(u.Host):
		return "", fmt.Errorf("%w: host %q is not in jobs.callbacks.allowed_hosts", ErrCallbackNotAllowed, truncate(u.Host, 100))
	}
	return u.String(), nil
}

// publicID is the id the app is given for job. A job accepted before
// jobs had tokens, found again by its idempotency key, has only its
// store id, which the public endpoint does not answer for.
func publicID(job jobs.Job) string {
	return cmp.Or(job.PublicID(), strconv.FormatInt(job.ID, 10))
}

// serveJob answers GET /_seawall/jobs/{id} and /_seawall/jobs/{id}/response
// for the public id the job was accepted with. An id that is wrong in any
// part is answered as unknown, so that answers tell nothing about the
// jobs of others.
func (p *Proxy) serveJob(w http.ResponseWriter, r *http.Request, rid string) {
	jobID, wantResponse := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, JobsPrefix), "/response")
	unknown := fmt.Errorf("%w %q", ErrUnknownJob, truncate(jobID, 100))
	id, token, ok := jobs.ParsePublicID(jobID)
	if p.jobs == nil || !ok || r.Method != http.MethodGet {
		writeProblem(w, unknown, "", rid, 0)
		return
	}
	job, err := p.jobs.Get(r.Context(), id)
	if errors.Is(err, jobs.ErrNotFound) || (err == nil && !job.Owns(token)) {
		writeProblem(w, unknown, "", rid, 0)
		return
	}
	if err != nil {
		writeProblem(w, p.storeFailed(r, rid, err), "", rid, 0)
		return
	}
	if !wantResponse {
		problem.FromSeawall(w.Header())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(job.PublicView())
		return
	}
	switch {
	case !job.Delivery.Deferred:
		writeProblem(w, fmt.Errorf("%w: job %s is async; only deferred jobs keep their response", ErrNoResult, jobID), job.Delivery.Upstream, rid, 0)
	case !job.Finished():
		w.Header().Set("Retry-After", "1")
		writeProblem(w, fmt.Errorf("%w: job %s is %s", ErrJobNotFinished, jobID, job.State), job.Delivery.Upstream, rid, 0)
	case job.Result == nil:
		writeProblem(w, fmt.Errorf("%w: job %s ended %s without an upstream answer (%s)", ErrNoResult, jobID, job.State, job.LastError), job.Delivery.Upstream, rid, 0)
	default:
		writeResult(w, job)
	}
}

// writeResult relays a deferred job's kept response as the upstream sent it.
func writeResult(w http.ResponseWriter, job jobs.Job) {
	h := w.Header()
	copyHeader(h, job.Result.Header, notRelayed)
	h.Del("Content-Length")
	h.Set("Seawall-Source", "upstream")
	h.Set("Seawall-Job-Id", publicID(job))
	h.Set("Seawall-Job-State", string(job.State))
	if job.Result.Truncated {
		h.Set("Seawall-Result-Truncated", "true")
	}
	w.WriteHeader(job.Result.Status)
	_, _ = w.Write(job.Result.Body)
}

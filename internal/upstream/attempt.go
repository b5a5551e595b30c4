package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/clock"
	"github.com/seawall/seawall/internal/h1"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/tracing"
	"github.com/seawall/seawall/internal/usage"
)

// keptBodyLimit bounds how much of a failed response is held while retrying,
// so that it can still be relayed if no later attempt gets through.
const keptBodyLimit = 64 << 10

// Do is the attempt loop: the limiter, the breaker, an endpoint, the
// call, and retries with backoff within the budget, each on another
// endpoint than the one that failed. It returns the first response worth
// relaying, or an error the handler maps to a problem.
func (u *Upstream) Do(req *http.Request, c *Call) (*http.Response, error) {
	rt := c.Route
	body, buffered, err := bufferBody(req, rt.BufferBody)
	if err != nil {
		return nil, err
	}
	replayable := buffered && rt.Retry.Replayable(req.Method, req.Header)
	u.budget.Request()

	var last *http.Response
	var lastErr error
	for attempt := 1; ; attempt++ {
		resp, err := u.Attempt(req, c, body, attempt)
		var gate GateError
		switch {
		case errors.As(err, &gate):
			if attempt == 1 {
				return nil, gate.error
			}
			return u.giveUp(c, last, lastErr)
		case errors.Is(err, ErrClientGone):
			CloseBody(last)
			return nil, err
		}
		c.Attempts = attempt
		if err == nil && !rt.Retry.RetryableStatus(resp.StatusCode) {
			CloseBody(last)
			return resp, nil
		}
		if errors.Is(err, ErrUpstreamTLS) || errors.Is(err, ErrOverloaded) {
			CloseBody(last) // another try would meet the same certificate, or the same want
			return nil, err
		}
		CloseBody(last)
		last, lastErr = keep(resp), err
		canReplay := replayable || (buffered && notSent(err))
		if attempt >= rt.Retry.MaxAttempts || !canReplay {
			return u.giveUp(c, last, lastErr)
		}
		if !u.budget.Withdraw() {
			u.M.budgetExhausted.Inc()
			return u.giveUp(c, last, lastErr)
		}
		u.M.retries.Inc()
		if clock.Sleep(req.Context(), rt.Retry.Backoff(attempt)) != nil {
			return u.giveUp(c, last, lastErr)
		}
	}
}

// BreakerRejecting fails a call on route fast while the breaker is
// open, before it takes a rate-limit token or anything else: no quota is
// spent on a call that will not be made, and it counts as saved.
func (u *Upstream) BreakerRejecting(route *Route) error {
	if u.Breaker == nil {
		return nil
	}
	if err := u.Breaker.Rejecting(); err != nil {
		u.failedFast(route)
		return err
	}
	return nil
}

// failedFast counts a call the open breaker refused.
func (u *Upstream) failedFast(route *Route) {
	u.M.breakerRejections.Inc()
	u.Usage.Saved(route.Name, usage.ByFailFast)
}

// SavedByCache counts a call on route the cache answered instead.
func (u *Upstream) SavedByCache(route *Route) {
	u.M.CacheSaved.Inc()
	u.Usage.Saved(route.Name, usage.ByCache)
}

// giveUp relays the last upstream response, or the last error.
func (u *Upstream) giveUp(c *Call, last *http.Response, lastErr error) (*http.Response, error) {
	if c.ClientGone() {
		CloseBody(last)
		return nil, ErrClientGone
	}
	if last != nil {
		return last, nil
	}
	if c.Attempts > 1 {
		return nil, &RetriesError{Attempts: c.Attempts, Err: lastErr}
	}
	return nil, lastErr
}

// Attempt passes the limiter and breaker gates and makes call n, with
// body (nil: req's own) as its body. A refusal by a gate is a GateError.
func (u *Upstream) Attempt(req *http.Request, c *Call, body []byte, n int) (resp *http.Response, err error) {
	ctx := req.Context()
	var tr tracing.Attempt // what the attempt's span records, when tracing is on
	if tracing.On() {
		var span trace.Span
		ctx, span = tracing.StartAttempt(ctx, u.Name, c.Route.Name, c.Route.Mode, n, c.Background)
		req = req.WithContext(ctx)
		defer func() { u.endSpan(span, &tr, c, resp, err) }()
	}
	maxWait := u.maxWait
	if n > 1 {
		maxWait = time.Hour // a retry waits as long as the overall deadline allows
	}
	if err := u.BreakerRejecting(c.Route); err != nil {
		return nil, GateError{err}
	}
	// The call is counted against the vendor's quota before it waits for a
	// slot, so that concurrent calls cannot pass a quota together; it is
	// refunded if it does not reach the vendor after all.
	if err := u.Usage.Reserve(ctx, c.Route.Name); err != nil {
		return nil, GateError{err}
	}
	billed := false
	defer func() {
		if !billed {
			u.Usage.Refund(c.Route.Name)
		}
	}()
	waitStart := time.Now()
	var slot ratelimit.Slot
	if c.Background {
		slot, err = u.Limiter.WaitBackground(ctx, c.Tenant, maxWait)
	} else {
		slot, err = u.Limiter.Wait(ctx, c.Tenant, maxWait)
	}
	tr.LimiterWait = time.Since(waitStart)
	u.M.limiterWait.Observe(tr.LimiterWait.Seconds())
	if err != nil {
		if c.ClientGone() {
			return nil, ErrClientGone
		}
		u.M.limited(err)
		return nil, GateError{err}
	}
	var permit breaker.Permit // the breaker is asked after the limiter, so that a probe is not held while waiting
	if u.Breaker != nil {
		p, err := u.Breaker.Allow()
		if err != nil {
			u.failedFast(c.Route)
			return nil, GateError{err}
		}
		permit = p
	}
	out := req
	if body != nil {
		out = req.WithContext(ctx) // a shallow copy: the header is shared
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
	}
	e := u.eps.pick(c.endpoint)
	if u.eps.pool != nil {
		out.URL, out.Host = endpointTarget(e.URL, c.Path, c.Query), ""
	}
	c.endpoint = e
	if tracing.On() {
		tr.Endpoint, tr.Zone = e.URL.Redacted(), e.Zone
		tracing.Inject(ctx, out.Header) // this attempt's span is the vendor's parent
	}
	start := time.Now()
	resp, wrote, err := u.send(out, c, slot)
	elapsed := time.Since(start)
	billed = reachedVendor(resp, err)
	outcome := u.outcome(resp, err)
	u.eps.done(e, elapsed, outcome != breaker.Ignored, healthFailure(resp, err))
	permit.Done(outcome, elapsed)
	u.M.attempt(resp, err, elapsed, tracing.TraceID(ctx))
	if resp != nil {
		u.Limiter.Observe(c.Tenant, slot, ratelimit.Answer{Status: resp.StatusCode, Header: resp.Header, Sent: wrote})
	}
	return resp, err
}

// endSpan records an attempt's endpoint, breaker, wait, answer and any
// pause it started on its span, and ends it.
func (u *Upstream) endSpan(span trace.Span, tr *tracing.Attempt, c *Call, resp *http.Response, err error) {
	tr.Breaker, tr.Cache = "disabled", c.Cache
	if u.Breaker != nil {
		tr.Breaker = u.Breaker.State().String()
	}
	var gate GateError
	switch {
	case errors.As(err, &gate):
		tr.Refused = gate.Unwrap()
	case err != nil:
		tr.Err = err
	case resp != nil:
		tr.Status = resp.StatusCode
		if st := u.Limiter.Status(); st.PausedFor > 0 && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			tr.Pause, tr.PauseReason = st.PausedFor, st.PauseReason
		}
	}
	tracing.EndAttempt(span, *tr)
}

// send makes the call, bounded by the route's per-try timeout up to the
// response headers, and names the failure: whether anything was sent
// decides between upstream-unreachable and upstream-outcome-unknown. It
// also returns when the request was written (zero if it was not).
func (u *Upstream) send(out *http.Request, c *Call, slot ratelimit.Slot) (*http.Response, time.Time, error) {
	ctx := out.Context()
	perTry := c.Route.PerTry
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= perTry {
		perTry = 0 // the overall deadline comes first
	}
	t := &try{u: u, c: c, slot: slot}
	var resp *http.Response
	var err error
	if h, ok := u.transport.(*h1.Transport); ok {
		resp, err = h.Call(out, perTry, t)
	} else {
		resp, err = t.viaTrace(out, perTry)
	}
	if err == nil {
		return resp, t.wroteAt(), nil
	}
	var tooLarge *http.MaxBytesError
	switch {
	case c.ClientGone():
		return nil, time.Time{}, ErrClientGone
	case errors.As(err, &tooLarge):
		return nil, time.Time{}, fmt.Errorf("%w: over %d bytes", ErrRequestTooLarge, tooLarge.Limit)
	case errors.Is(err, ErrUpstreamTLS):
		return nil, time.Time{}, err
	case localTrouble(err):
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrOverloaded, err)
	case errors.Is(err, h1.ErrHeaderTimeout):
		return nil, time.Time{}, fmt.Errorf("%w: no response within the per-try timeout of %s", ErrUpstreamTimeout, c.Route.PerTry)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, time.Time{}, fmt.Errorf("%w: no response within the overall timeout of %s", ErrUpstreamTimeout, c.Route.Overall)
	case tlsTrouble(err):
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrUpstreamTLS, err)
	case t.wrote.Load() != 0:
		return nil, time.Time{}, &OutcomeUnknownError{Keyed: out.Header.Get("Idempotency-Key") != "", Err: err}
	default:
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrUpstreamUnreachable, err)
	}
}

// try is one attempt's view of its call: it learns when the request went
// out, which starts the vendor's rate window and tells an unanswered call
// from one that never left, and relays 1xx answers.
type try struct {
	u     *Upstream
	c     *Call
	slot  ratelimit.Slot
	wrote atomic.Int64 // unix nanoseconds the whole request went out on the last connection; 0: not
}

func (t *try) GotConn(bool) { t.wrote.Store(0) }

func (t *try) WroteRequest(err error) {
	if err != nil {
		t.wrote.Store(0)
		return
	}
	now := time.Now()
	t.wrote.Store(now.UnixNano())
	t.u.Limiter.Sent(t.c.Tenant, t.slot, now)
}

func (t *try) Interim(code int, h http.Header) error {
	if t.c.Interim != nil {
		t.c.Interim.Relay(code, h)
	}
	return nil
}

func (t *try) wroteAt() time.Time {
	if n := t.wrote.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// viaTrace makes the call through a transport that reports its steps only
// to an httptrace.ClientTrace (net/http's, for HTTP/2), from its own
// goroutines, and bounds it by perTry (0: none) up to the response
// headers with a context of its own, ended when the body is closed.
func (t *try) viaTrace(out *http.Request, perTry time.Duration) (*http.Response, error) {
	trace := &httptrace.ClientTrace{
		GotConn:      func(i httptrace.GotConnInfo) { t.GotConn(i.Reused) },
		WroteRequest: func(i httptrace.WroteRequestInfo) { t.WroteRequest(i.Err) },
	}
	if t.c.Interim != nil {
		trace.Got1xxResponse = func(code int, h textproto.MIMEHeader) error { return t.Interim(code, http.Header(h)) }
	}
	ctx, cancel := context.WithCancelCause(httptrace.WithClientTrace(out.Context(), trace))
	if perTry > 0 {
		timer := time.AfterFunc(perTry, func() { cancel(h1.ErrHeaderTimeout) })
		defer timer.Stop()
	}
	resp, err := t.u.transport.RoundTrip(out.WithContext(ctx))
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, h1.ErrHeaderTimeout) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &CancelOnClose{ReadCloser: resp.Body, Cancel: func() { cancel(nil) }}
	return resp, nil
}

// outcome judges an attempt for the breaker.
func (u *Upstream) outcome(resp *http.Response, err error) breaker.Outcome {
	switch {
	case errors.Is(err, ErrClientGone), errors.Is(err, ErrRequestTooLarge), errors.Is(err, ErrOverloaded):
		return breaker.Ignored
	case err != nil:
		return breaker.Failure
	}
	for _, r := range u.failureStatuses {
		if resp.StatusCode >= r.Lo && resp.StatusCode <= r.Hi {
			return breaker.Failure
		}
	}
	return breaker.Success
}

// reachedVendor reports whether a call reached the vendor, which bills
// it: it answered, or the request went out and no answer came back.
func reachedVendor(resp *http.Response, err error) bool {
	return resp != nil || errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrUpstreamTimeout)
}

// notSent reports whether an attempt failed before any of the request
// could reach the upstream (a dial error, a reset during the handshake),
// which makes any method safe to retry.
func notSent(err error) bool {
	return errors.Is(err, ErrUpstreamUnreachable)
}

// bufferBody reads the request body into memory, up to limit, so it can be
// replayed. A larger body is left to stream once (buffered is false).
func bufferBody(req *http.Request, limit int64) (body []byte, buffered bool, err error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true, nil
	}
	if req.ContentLength > limit {
		return nil, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, false, fmt.Errorf("%w: over %d bytes", ErrRequestTooLarge, tooLarge.Limit)
	case err != nil:
		return nil, false, fmt.Errorf("%w: %w", ErrBodyRead, err)
	case int64(len(b)) > limit:
		req.Body = ReadCloser{Reader: io.MultiReader(bytes.NewReader(b), req.Body), Closer: req.Body}
		return nil, false, nil
	}
	return b, true, nil
}

// keep holds a failed response for relaying if retries run out, reading
// its body into memory; one too large to hold is dropped.
func keep(resp *http.Response) *http.Response {
	if resp == nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, keptBodyLimit+1))
	if err != nil || len(b) > keptBodyLimit {
		return nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp
}

// CloseBody closes resp's body, if there is a resp.
func CloseBody(resp *http.Response) {
	if resp != nil {
		_ = resp.Body.Close()
	}
}

// CancelOnClose ends an attempt's context once its body is done with.
type CancelOnClose struct {
	io.ReadCloser
	Cancel context.CancelFunc
}

// Close closes the body, then cancels.
func (c *CancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.Cancel()
	return err
}

// ReadCloser is a body read from one reader and closed by another.
type ReadCloser struct {
	io.Reader
	io.Closer
}

package proxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/problem"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/seawall/seawall/internal/usage"
)

// Errors Seawall answers with instead of an upstream response. Those of
// a call to the upstream are the upstream runtime's, named here too.
var (
	ErrUnknownUpstream     = upstream.ErrUnknownUpstream
	ErrNotProxy            = errors.New("not an open proxy")
	ErrUpstreamTimeout     = upstream.ErrUpstreamTimeout
	ErrUpstreamUnreachable = upstream.ErrUpstreamUnreachable
	ErrRequestTooLarge     = upstream.ErrRequestTooLarge
	ErrResponseTooLarge    = errors.New("upstream response too large")
	ErrUnsupportedMode     = errors.New("access mode not available")
	ErrClientGone          = upstream.ErrClientGone
	// ErrBadRequest: the app's request could not be read as HTTP (a
	// malformed chunked body, one cut short).
	ErrBadRequest = errors.New("bad request")
	// ErrBadFraming: the request's head frames its body in a way that
	// cannot be trusted (HTTP/1.0 with Transfer-Encoding).
	ErrBadFraming     = errors.New("bad request framing")
	ErrOutcomeUnknown = upstream.ErrOutcomeUnknown
	ErrUpstreamTLS    = upstream.ErrUpstreamTLS
	ErrOverloaded     = upstream.ErrOverloaded
)

// OutcomeUnknownError and RetriesError are the upstream runtime's.
type (
	OutcomeUnknownError = upstream.OutcomeUnknownError
	RetriesError        = upstream.RetriesError
)

// StatusClientClosed is logged for requests whose client went away; nothing
// is sent (nginx's 499).
const StatusClientClosed = 499

// The problems the application listener answers with (docs/errors.md).
var (
	// kindClientClosed is never written: the client has gone. It names the status logged.
	kindClientClosed    = &problem.Kind{Status: StatusClientClosed, Code: "client-closed", Title: "Client closed request"}
	kindUnknownUpstream = problem.Define(http.StatusNotFound, "unknown-upstream", "Unknown upstream",
		"The first path segment must name an upstream in Seawall's config.")
	kindBadRequest = problem.Define(http.StatusBadRequest, "bad-request", "Bad request",
		"The request's body could not be read: malformed chunked encoding, or cut short. Nothing was sent upstream, or what was sent was cut off.")
	kindRequestTimeout = problem.Define(http.StatusRequestTimeout, "request-timeout", "Request timeout",
		"The request's body did not arrive within limits.body_read_timeout, or the route's overall timeout. Nothing more was sent upstream.")
	kindBadFraming = problem.Define(http.StatusBadRequest, "bad-request", "Bad request",
		"HTTP/1.0 has no Transfer-Encoding: send the body with Content-Length, or use HTTP/1.1. Nothing was sent upstream.")
	kindBadPath = problem.Define(http.StatusBadRequest, "bad-path", "Path not allowed",
		"Dot segments (., .., or encoded as %2e) may not climb above the upstream's base path, nor hide behind an encoded slash (..%2f).")
	kindNotAProxy = problem.Define(http.StatusBadRequest, "not-a-proxy", "Not a proxy request",
		"Send origin-form requests: /{upstream}/{path}.")
	kindUnsupportedMode = problem.Define(http.StatusBadRequest, "unsupported-mode", "Access mode not available",
		"Omit Seawall-Mode, send sync, or cached on a route with a cache.")
	kindUnknownJob = problem.Define(http.StatusNotFound, "unknown-job", "Unknown job",
		"Use the id from Seawall-Job-Id or Location.")
	kindCallbackNotAllowed = problem.Define(http.StatusBadRequest, "callback-not-allowed", "Callback URL not allowed",
		"Use an http(s) URL on a host listed in jobs.callbacks.allowed_hosts. The request was not accepted.")
	kindJobNotFinished = problem.Define(http.StatusConflict, "job-not-finished", "Job not finished",
		"Poll the job, or ask for a Seawall-Callback; the response is kept once the job ends.")
	kindNoResult = problem.Define(http.StatusNotFound, "no-result", "No stored response",
		"Only deferred jobs (Seawall-Mode: deferred, or Prefer: respond-async) keep the upstream's response, and only once it answered.")
	kindIdempotencyKeyReused = problem.Define(http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency key reused",
		"The key was first used with another body or query for this method and path; use a new key for a new request. Nothing was accepted.")
	kindQueueUnavailable = problem.Define(http.StatusServiceUnavailable, "queue-unavailable", "Job store unavailable",
		"The request was not accepted; send it again after Retry-After. Operators: Seawall's log says why.")
	kindNotCached = problem.Define(http.StatusGatewayTimeout, "not-cached", "Not in cache",
		"The request said only-if-cached and no usable response is stored.")
	kindRequestTooLarge = problem.Define(http.StatusRequestEntityTooLarge, "request-too-large", "Request too large",
		"Raise limits.max_request_body, or send a smaller body.")
	kindQuotaExhausted = problem.Define(http.StatusTooManyRequests, "quota-exhausted", "Vendor quota exhausted",
		"The upstream's daily or monthly quota (quota in Seawall's config) is spent; nothing was sent. Retry after Retry-After, when the period resets.")
	kindUpstreamPaused = problem.Define(http.StatusTooManyRequests, "upstream-paused", "Upstream asked to pause",
		"The upstream sent Retry-After; retry after the time given.")
	kindRateLimited = problem.Define(http.StatusTooManyRequests, "rate-limited", "Rate limited",
		"Retry after the time in Retry-After, or raise the upstream's rate_limit.")
	kindLimiterUnavailable = problem.Define(http.StatusServiceUnavailable, "limiter-unavailable", "Shared rate limiter unavailable",
		"Redis, which keeps this upstream's limit for every replica, does not answer and redis.on_failure is closed: retry after Retry-After, or set on_failure: local.")
	kindResponseTooLarge = problem.Define(http.StatusBadGateway, "response-too-large", "Upstream response too large",
		"Raise limits.max_response_body.")
	kindSeawallOverloaded = problem.Define(http.StatusServiceUnavailable, "seawall-overloaded", "Seawall overloaded",
		"Seawall's own host ran out of a resource (file descriptors, buffers or local ports); nothing was sent and the upstream is not blamed. Retry after Retry-After; operators: see Seawall's log.")
	kindUpstreamTLS = problem.Define(http.StatusBadGateway, "upstream-tls", "Upstream TLS failure",
		"The upstream's certificate was not accepted, or it refused Seawall's: check the upstream's tls settings (ca_file, server_name, cert_file). Not retried; nothing was sent.")
	kindOutcomeUnknownKeyed = problem.Define(http.StatusBadGateway, "upstream-outcome-unknown", "Upstream outcome unknown",
		"The request reached the upstream and no answer came back: it may have acted on it. It carried an Idempotency-Key, so sending it again with the same key is safe with a vendor that honours keys.")
	kindOutcomeUnknownUnkeyed = problem.Define(http.StatusBadGateway, "upstream-outcome-unknown", "Upstream outcome unknown",
		"The request reached the upstream and no answer came back: it may have acted on it. It had no Idempotency-Key, so it was not retried: check with the vendor before sending it again, and send a key next time.")
	kindRetriesTimedOut = problem.Define(http.StatusGatewayTimeout, "retries-exhausted", "Retries exhausted",
		"Every attempt timed out; see the upstream's health.")
	kindRetriesFailed = problem.Define(http.StatusBadGateway, "retries-exhausted", "Retries exhausted",
		"Every attempt failed; see the upstream's health.")
	kindUpstreamTimeout = problem.Define(http.StatusGatewayTimeout, "upstream-timeout", "Upstream timed out",
		"Raise the route's timeouts, or check the upstream's latency.")
	kindUpstreamUnreachable = problem.Define(http.StatusBadGateway, "upstream-unreachable", "Upstream unreachable",
		"Nothing was sent: check the upstream's URL, DNS and network.")
	kindCircuitOpen = problem.Define(http.StatusServiceUnavailable, "circuit-open", "Circuit open",
		"The upstream has been failing; Seawall is not calling it until Retry-After.")
)

// classify maps an error to the kind of problem it is answered with. It is
// the one place where the application listener's errors become HTTP.
func classify(err error) *problem.Kind {
	// The open breaker's refusal is the fail-fast path's one error, and an
	// *OpenError unwraps to breaker.ErrOpen alone: none of the cases
	// before that one can match it, so it is answered without their walks
	// along the chain.
	if _, open := err.(*breaker.OpenError); open { //nolint:errorlint // the bare error only: a wrapped one may carry more, and goes through the switch
		return kindCircuitOpen
	}
	var re *RetriesError
	retried := errors.As(err, &re) && re.Attempts > 1
	switch {
	case errors.Is(err, ErrClientGone), errors.Is(err, context.Canceled):
		return kindClientClosed
	case errors.Is(err, ErrUnknownUpstream):
		return kindUnknownUpstream
	case errors.Is(err, ErrBadRequest):
		return kindBadRequest
	case errors.Is(err, ErrRequestTimeout):
		return kindRequestTimeout
	case errors.Is(err, ErrBadFraming):
		return kindBadFraming
	case errors.Is(err, ErrBadPath):
		return kindBadPath
	case errors.Is(err, ErrNotProxy):
		return kindNotAProxy
	case errors.Is(err, ErrUnsupportedMode):
		return kindUnsupportedMode
	case errors.Is(err, ErrUnknownJob):
		return kindUnknownJob
	case errors.Is(err, ErrCallbackNotAllowed):
		return kindCallbackNotAllowed
	case errors.Is(err, ErrJobNotFinished):
		return kindJobNotFinished
	case errors.Is(err, ErrNoResult):
		return kindNoResult
	case errors.Is(err, ErrKeyReused):
		return kindIdempotencyKeyReused
	case errors.Is(err, ErrQueueUnavailable):
		return kindQueueUnavailable
	case errors.Is(err, ErrNotCached):
		return kindNotCached
	case errors.Is(err, ErrRequestTooLarge):
		return kindRequestTooLarge
	case errors.Is(err, usage.ErrQuotaExhausted):
		return kindQuotaExhausted
	case errors.Is(err, ratelimit.ErrExceeded):
		var ex *ratelimit.ExceededError
		switch {
		case errors.As(err, &ex) && ex.Unavailable:
			return kindLimiterUnavailable
		case ex != nil && ex.Paused:
			return kindUpstreamPaused
		}
		return kindRateLimited
	case errors.Is(err, breaker.ErrOpen):
		return kindCircuitOpen
	case errors.Is(err, ErrResponseTooLarge):
		return kindResponseTooLarge
	case errors.Is(err, ErrOverloaded):
		return kindSeawallOverloaded
	case errors.Is(err, ErrUpstreamTLS):
		return kindUpstreamTLS
	case errors.Is(err, ErrOutcomeUnknown):
		var ou *OutcomeUnknownError
		if errors.As(err, &ou) && ou.Keyed {
			return kindOutcomeUnknownKeyed
		}
		return kindOutcomeUnknownUnkeyed
	case retried && errors.Is(err, ErrUpstreamTimeout):
		return kindRetriesTimedOut
	case retried:
		return kindRetriesFailed
	case errors.Is(err, ErrUpstreamTimeout), errors.Is(err, context.DeadlineExceeded):
		return kindUpstreamTimeout
	default:
		return kindUpstreamUnreachable
	}
}

// writeProblem answers err as application/problem+json and returns the status.
func writeProblem(w http.ResponseWriter, err error, upstream, requestID string, attempts int) int {
	k := classify(err)
	if k == kindClientClosed {
		return k.Status
	}
	h := w.Header()
	if k.Status == http.StatusRequestTimeout {
		// The rest of the body is not waited for, so the connection
		// cannot carry another request.
		h["Connection"] = []string{"close"}
	}
	if d, ok := retryAfter(err); ok {
		h["Retry-After"] = retryAfterField(int(max(1, (d+time.Second-1)/time.Second)))
	}
	problem.Write(w, k, problem.Body{Detail: err.Error(), Upstream: upstream, RequestID: requestID, Attempts: attempts})
	return k.Status
}

// retryAfterField is the Retry-After field's value for secs: the one
// made last when it is the same, as it is for every refusal of an open
// breaker within a second. Shared: a field's values are replaced, never
// changed in place.
func retryAfterField(secs int) []string {
	if last := lastRetryAfter.Load(); last != nil && last.secs == secs {
		return last.field[:]
	}
	f := &retryAfterValue{secs: secs, field: [1]string{strconv.Itoa(secs)}}
	lastRetryAfter.Store(f)
	return f.field[:]
}

type retryAfterValue struct {
	secs  int
	field [1]string
}

var lastRetryAfter atomic.Pointer[retryAfterValue]

func retryAfter(err error) (time.Duration, bool) {
	// The fail-fast path's bare refusal, without the walks below.
	if oe, ok := err.(*breaker.OpenError); ok { //nolint:errorlint // the bare error only; a wrapped one takes the walks
		return oe.RetryAfter, true
	}
	if errors.Is(err, ErrQueueUnavailable) {
		return time.Second, true
	}
	return upstream.RetryAfter(err)
}

package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/seawall/seawall/internal/usage"
)

// Errors Seawall answers with instead of an upstream response. Those of
// a call to the upstream are the upstream runtime's, named here too.
var (
	ErrUnknownUpstream     = errors.New("unknown upstream")
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

// problem is an RFC 9457 problem detail.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Upstream  string `json:"upstream,omitempty"`
	Hint      string `json:"hint,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Attempts  int    `json:"attempts"` // upstream calls made for this request
}

// problemTypePrefix makes each code a stable URI for the problem's type.
const problemTypePrefix = "urn:seawall:problem:"

// classify maps an error to its status, stable code, title and a hint. It
// is the one place where Seawall's errors become HTTP.
func classify(err error) (status int, code, title, hint string) {
	// The open breaker's refusal is the fail-fast path's one error, and an
	// *OpenError unwraps to breaker.ErrOpen alone: none of the cases
	// before that one can match it, so it is answered without their walks
	// along the chain.
	if _, open := err.(*breaker.OpenError); open { //nolint:errorlint // the bare error only: a wrapped one may carry more, and goes through the switch
		return circuitOpen()
	}
	var re *RetriesError
	retried := errors.As(err, &re) && re.Attempts > 1
	switch {
	case errors.Is(err, ErrClientGone), errors.Is(err, context.Canceled):
		return StatusClientClosed, "client-closed", "Client closed request", ""
	case errors.Is(err, ErrUnknownUpstream):
		return http.StatusNotFound, "unknown-upstream", "Unknown upstream", "The first path segment must name an upstream in Seawall's config."
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad-request", "Bad request", "The request's body could not be read: malformed chunked encoding, or cut short. Nothing was sent upstream, or what was sent was cut off."
	case errors.Is(err, ErrRequestTimeout):
		return http.StatusRequestTimeout, "request-timeout", "Request timeout", "The request's body did not arrive within limits.body_read_timeout, or the route's overall timeout. Nothing more was sent upstream."
	case errors.Is(err, ErrBadFraming):
		return http.StatusBadRequest, "bad-request", "Bad request", "HTTP/1.0 has no Transfer-Encoding: send the body with Content-Length, or use HTTP/1.1. Nothing was sent upstream."
	case errors.Is(err, ErrBadPath):
		return http.StatusBadRequest, "bad-path", "Path not allowed", "Dot segments (., .., or encoded as %2e) may not climb above the upstream's base path, nor hide behind an encoded slash (..%2f)."
	case errors.Is(err, ErrNotProxy):
		return http.StatusBadRequest, "not-a-proxy", "Not a proxy request", "Send origin-form requests: /{upstream}/{path}."
	case errors.Is(err, ErrUnsupportedMode):
		return http.StatusBadRequest, "unsupported-mode", "Access mode not available", "Omit Seawall-Mode, send sync, or cached on a route with a cache."
	case errors.Is(err, ErrUnknownJob):
		return http.StatusNotFound, "unknown-job", "Unknown job", "Use the id from Seawall-Job-Id or Location."
	case errors.Is(err, ErrCallbackNotAllowed):
		return http.StatusBadRequest, "callback-not-allowed", "Callback URL not allowed", "Use an http(s) URL on a host listed in jobs.callbacks.allowed_hosts. The request was not accepted."
	case errors.Is(err, ErrJobNotFinished):
		return http.StatusConflict, "job-not-finished", "Job not finished", "Poll the job, or ask for a Seawall-Callback; the response is kept once the job ends."
	case errors.Is(err, ErrNoResult):
		return http.StatusNotFound, "no-result", "No stored response", "Only deferred jobs (Seawall-Mode: deferred, or Prefer: respond-async) keep the upstream's response, and only once it answered."
	case errors.Is(err, ErrKeyReused):
		return http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency key reused", "The key was first used with another body or query for this method and path; use a new key for a new request. Nothing was accepted."
	case errors.Is(err, ErrQueueUnavailable):
		return http.StatusServiceUnavailable, "queue-unavailable", "Job store unavailable", "The request was not accepted; send it again after Retry-After. Operators: Seawall's log says why."
	case errors.Is(err, ErrNotCached):
		return http.StatusGatewayTimeout, "not-cached", "Not in cache", "The request said only-if-cached and no usable response is stored."
	case errors.Is(err, ErrRequestTooLarge):
		return http.StatusRequestEntityTooLarge, "request-too-large", "Request too large", "Raise limits.max_request_body, or send a smaller body."
	case errors.Is(err, usage.ErrQuotaExhausted):
		return http.StatusTooManyRequests, "quota-exhausted", "Vendor quota exhausted", "The upstream's daily or monthly quota (quota in Seawall's config) is spent; nothing was sent. Retry after Retry-After, when the period resets."
	case errors.Is(err, ratelimit.ErrExceeded):
		var ex *ratelimit.ExceededError
		if errors.As(err, &ex) && ex.Paused {
			return http.StatusTooManyRequests, "upstream-paused", "Upstream asked to pause", "The upstream sent Retry-After; retry after the time given."
		}
		return http.StatusTooManyRequests, "rate-limited", "Rate limited", "Retry after the time in Retry-After, or raise the upstream's rate_limit."
	case errors.Is(err, breaker.ErrOpen):
		return circuitOpen()
	case errors.Is(err, ErrResponseTooLarge):
		return http.StatusBadGateway, "response-too-large", "Upstream response too large", "Raise limits.max_response_body."
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable, "seawall-overloaded", "Seawall overloaded", "Seawall's own host ran out of a resource (file descriptors, buffers or local ports); nothing was sent and the upstream is not blamed. Retry after Retry-After; operators: see Seawall's log."
	case errors.Is(err, ErrUpstreamTLS):
		return http.StatusBadGateway, "upstream-tls", "Upstream TLS failure", "The upstream's certificate was not accepted, or it refused Seawall's: check the upstream's tls settings (ca_file, server_name, cert_file). Not retried; nothing was sent."
	case errors.Is(err, ErrOutcomeUnknown):
		var ou *OutcomeUnknownError
		if errors.As(err, &ou) && ou.Keyed {
			return http.StatusBadGateway, "upstream-outcome-unknown", "Upstream outcome unknown", "The request reached the upstream and no answer came back: it may have acted on it. It carried an Idempotency-Key, so sending it again with the same key is safe with a vendor that honours keys."
		}
		return http.StatusBadGateway, "upstream-outcome-unknown", "Upstream outcome unknown", "The request reached the upstream and no answer came back: it may have acted on it. It had no Idempotency-Key, so it was not retried: check with the vendor before sending it again, and send a key next time."
	case retried && errors.Is(err, ErrUpstreamTimeout):
		return http.StatusGatewayTimeout, "retries-exhausted", "Retries exhausted", "Every attempt timed out; see the upstream's health."
	case retried:
		return http.StatusBadGateway, "retries-exhausted", "Retries exhausted", "Every attempt failed; see the upstream's health."
	case errors.Is(err, ErrUpstreamTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "upstream-timeout", "Upstream timed out", "Raise the route's timeouts, or check the upstream's latency."
	default:
		return http.StatusBadGateway, "upstream-unreachable", "Upstream unreachable", "Nothing was sent: check the upstream's URL, DNS and network."
	}
}

func circuitOpen() (status int, code, title, hint string) {
	return http.StatusServiceUnavailable, "circuit-open", "Circuit open", "The upstream has been failing; Seawall is not calling it until Retry-After."
}

// problemJSON is the shared Content-Type value of a problem.
var problemJSON = []string{"application/problem+json"}

// writeProblem answers err as application/problem+json and returns the status.
func writeProblem(w http.ResponseWriter, err error, upstream, requestID string, attempts int) int {
	status, code, title, hint := classify(err)
	if status == StatusClientClosed {
		return status
	}
	// The names are canonical: assigned directly, without the header
	// map's canonicalizing.
	h := w.Header()
	h["Content-Type"] = problemJSON
	h["Seawall-Source"] = fromSeawall
	h["Seawall-Error"] = []string{code}
	if status == http.StatusRequestTimeout {
		// The rest of the body is not waited for, so the connection
		// cannot carry another request.
		h["Connection"] = []string{"close"}
	}
	if d, ok := retryAfter(err); ok {
		h["Retry-After"] = []string{strconv.Itoa(int(max(1, (d+time.Second-1)/time.Second)))}
	}
	p := problem{Type: problemTypePrefix + code, Title: title, Status: status, Detail: err.Error(),
		Upstream: upstream, Hint: hint, RequestID: requestID, Attempts: attempts}
	w.WriteHeader(status)
	// Most problems fit; a longer one grows it.
	_, _ = w.Write(p.appendJSON(make([]byte, 0, 512)))
	return status
}

// appendJSON appends p's JSON to b as encoding/json's Encoder writes it,
// byte for byte (TestProblemJSONIsEncodingJSONs): encoding/json walked
// the struct by reflection, a tenth of a refusal's CPU.
func (p *problem) appendJSON(b []byte) []byte {
	b = appendJSONString(append(b, `{"type":`...), p.Type)
	b = appendJSONString(append(b, `,"title":`...), p.Title)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(p.Status), 10)
	b = appendJSONString(append(b, `,"detail":`...), p.Detail)
	if p.Upstream != "" {
		b = appendJSONString(append(b, `,"upstream":`...), p.Upstream)
	}
	if p.Hint != "" {
		b = appendJSONString(append(b, `,"hint":`...), p.Hint)
	}
	if p.RequestID != "" {
		b = appendJSONString(append(b, `,"request_id":`...), p.RequestID)
	}
	b = strconv.AppendInt(append(b, `,"attempts":`...), int64(p.Attempts), 10)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string as encoding/json writes it:
// printable ASCII that JSON and HTML leave alone as it is, anything else
// by encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

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

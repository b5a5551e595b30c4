package retry

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// Policy is one route's retry policy.
type Policy struct {
	MaxAttempts int // counts the first try
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	Statuses    []StatusRange // retried upstream statuses
	AllMethods  bool          // retry non-idempotent requests without an Idempotency-Key
}

// Backoff returns the delay before the given retry (1 for the first retry):
// a uniform draw from [0, min(MaxDelay, BaseDelay·2^(retry-1))] ("full
// jitter"), which spreads retries of many clients apart.
func (p Policy) Backoff(retry int) time.Duration {
	ceiling := p.MaxDelay
	if retry < 63 {
		if d := p.BaseDelay << (retry - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// RetryableStatus reports whether an upstream status is worth another try.
func (p Policy) RetryableStatus(code int) bool {
	for _, r := range p.Statuses {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// Replayable reports whether a request may be sent more than once: its
// method is idempotent (RFC 9110 §9.2.2), it carries an Idempotency-Key, or
// the policy allows all methods.
func (p Policy) Replayable(method string, h http.Header) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return p.AllMethods || h.Get("Idempotency-Key") != ""
}

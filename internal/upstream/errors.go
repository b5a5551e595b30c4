package upstream

import (
	"errors"
	"fmt"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/usage"
)

// The failures of a call to an upstream; the handler maps each to the
// problem the app is answered with.
var (
	// ErrUnknownUpstream: no upstream of that name is in force.
	ErrUnknownUpstream     = errors.New("unknown upstream")
	ErrUpstreamTimeout     = errors.New("upstream timed out")
	ErrUpstreamUnreachable = errors.New("upstream unreachable")
	ErrRequestTooLarge     = errors.New("request body too large")
	ErrClientGone          = errors.New("client went away")
	// ErrOutcomeUnknown: the request was sent, and no answer came back.
	ErrOutcomeUnknown = errors.New("upstream outcome unknown")
	// ErrUpstreamTLS: the upstream's certificate was refused, or it
	// refused Seawall's TLS.
	ErrUpstreamTLS = errors.New("upstream TLS failure")
	// ErrOverloaded: Seawall's own host ran out of something (file
	// descriptors, buffers, local ports); the upstream is not to blame.
	ErrOverloaded = errors.New("seawall overloaded")
	// ErrBodyRead marks a failure to read the app's request body: the
	// client went away, or sent a malformed body (the handler tells which).
	ErrBodyRead = errors.New("reading the request body")
)

// OutcomeUnknownError is a failure after the whole request was written
// to the upstream: it may have acted on it.
type OutcomeUnknownError struct {
	// Keyed says the request carried an Idempotency-Key.
	Keyed bool
	Err   error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("%v: the request was sent, then: %v", ErrOutcomeUnknown, e.Err)
}

func (e *OutcomeUnknownError) Unwrap() []error { return []error{ErrOutcomeUnknown, e.Err} }

// RetriesError says every attempt failed; Err is the last attempt's failure.
type RetriesError struct {
	Attempts int
	Err      error
}

func (e *RetriesError) Error() string {
	return fmt.Sprintf("%d attempts failed, last: %v", e.Attempts, e.Err)
}

func (e *RetriesError) Unwrap() error { return e.Err }

// GateError is a refusal by the limiter or the breaker: no call was made.
type GateError struct{ error }

func (e GateError) Unwrap() error { return e.error }

// RetryAfter is when a refused call may be tried again: the limiter's or
// the open breaker's wait, or a second when Seawall's own host is short.
func RetryAfter(err error) (time.Duration, bool) {
	var ex *ratelimit.ExceededError
	if errors.As(err, &ex) {
		return ex.RetryAfter, true
	}
	var oe *breaker.OpenError
	if errors.As(err, &oe) {
		return oe.RetryAfter, true
	}
	var qe *usage.QuotaError
	if errors.As(err, &qe) {
		return qe.RetryAfter, true
	}
	if errors.Is(err, ErrOverloaded) {
		return time.Second, true
	}
	return 0, false
}

package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrExceeded is returned when no slot is free within the caller's wait.
var ErrExceeded = errors.New("rate limit exceeded")

// ExceededError says how long the caller should wait before trying again.
type ExceededError struct {
	// RetryAfter is when a slot is expected to be free.
	RetryAfter time.Duration
	// Paused is true when the upstream itself asked for the pause.
	Paused bool
	// Reason says who paused: PauseRetryAfter, PauseQuota or PauseShared.
	Reason string
	// Unavailable: the shared limiter's store cannot be reached and the
	// failure policy is closed; no slot was looked for.
	Unavailable bool
}

func (e *ExceededError) Error() string {
	if e.Unavailable {
		return fmt.Sprintf("the shared limiter cannot be reached, retry in %s", e.RetryAfter.Round(time.Millisecond))
	}
	if e.Paused {
		return fmt.Sprintf("upstream paused (%s) for another %s", e.Reason, e.RetryAfter.Round(time.Millisecond))
	}
	return fmt.Sprintf("rate limit exceeded, retry in %s", e.RetryAfter.Round(time.Millisecond))
}

func (e *ExceededError) Unwrap() error { return ErrExceeded }

// Why an upstream is paused.
const (
	// PauseRetryAfter: a 429 or 503 said when to come back.
	PauseRetryAfter = "retry-after"
	// PauseQuota: the vendor's quota headers said none is left.
	PauseQuota = "quota"
	// PauseShared: another replica heard the vendor ask for a pause.
	PauseShared = "shared"
)

// Policy describes a quota for the RateLimit-Policy header.
type Policy struct {
	Quota  int           // calls allowed per Window at the sustained rate, plus burst
	Window time.Duration // the period the quota is stated over
}

// Slot is one call's permission to leave, from Wait. The call reports its
// answer with Observe and the same Slot.
type Slot struct {
	// At is when the call was released.
	At   time.Time
	seq  int64         // releases before and including this one
	held bool          // the pace held the call back: the rate was binding
	iv   time.Duration // the interval in force at release; 0 when unlimited
}

// Limiter paces the calls to one upstream: every call waits for a slot,
// and slots are spaced by the time calls actually leave, never by when
// they asked. A pause, from the upstream's answers or its quota headers,
// binds every call that has not left yet.
type Limiter interface {
	// Wait blocks until a call for key may go, for at most maxWait (and never
	// past ctx's deadline). It returns an *ExceededError when no slot comes
	// in time, or ctx's error when ctx ends first.
	Wait(ctx context.Context, key string, maxWait time.Duration) (Slot, error)
	// WaitBackground is Wait for work that yields to interactive calls
	// (job deliveries): it takes a slot only when one is free now and no
	// Wait is queued, so interactive traffic has priority over it.
	WaitBackground(ctx context.Context, key string, maxWait time.Duration) (Slot, error)
	// Sent reports when the call released at s actually went out (its
	// request written), so that the next call is spaced from that moment:
	// delays between release and the wire never bring two calls closer.
	Sent(key string, s Slot, at time.Time)
	// Observe feeds back the upstream's answer to the call released at s:
	// Retry-After pauses, quota headers, (when adaptive) the rate, and
	// when the vendor can have counted the call.
	Observe(key string, s Slot, a Answer)
	// Pause holds back every key until the given time. An earlier time than
	// a pause in force does not shorten it.
	Pause(until time.Time, reason string)
	// Status is the limiter's state now, for the admin API and headers.
	Status() Status
	// Remaining estimates the slots free now for key, for response headers.
	Remaining(key string) int
	// Policy describes the quota.
	Policy() Policy
}

// Answer is what the upstream said to one call.
type Answer struct {
	// Status is the answer's status; 0 when none came.
	Status int
	// Header is the answer's header.
	Header http.Header
	// Sent is when the request was written; zero when unknown.
	Sent time.Time
}

// Status is a limiter's state at one moment.
type Status struct {
	// Configured is the rate from the config, in calls a second; 0 for none.
	Configured float64 `json:"configured_per_second"`
	// Effective is the rate calls are paced at now (after headroom and
	// adaptation); 0 means unlimited.
	Effective float64 `json:"effective_per_second"`
	// Adaptive says whether the rate learns from the upstream's 429s.
	Adaptive bool `json:"adaptive"`
	// PausedFor is how much of a pause remains, and PauseReason why.
	PausedFor   time.Duration `json:"-"`
	PauseReason string        `json:"pause_reason,omitempty"`
	// QuotaRemaining is the vendor's remaining quota as last stated, less
	// the calls sent since; -1 when unknown.
	QuotaRemaining int64 `json:"quota_remaining"`
	// Scope is "local" (this replica's pace) or "global" (shared with the
	// other replicas through Redis).
	Scope string `json:"scope"`
	// Degraded, for a global limiter while Redis does not answer, says
	// what holds instead: "local share 1/3" or "closed".
	Degraded string `json:"degraded,omitempty"`
}

// budget is how long a caller may wait: maxWait, cut short by ctx's deadline.
func budget(ctx context.Context, now time.Time, maxWait time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) < maxWait {
		return dl.Sub(now)
	}
	return maxWait
}

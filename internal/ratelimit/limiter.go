package ratelimit

import (
	"context"
	"errors"
	"fmt"
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
}

func (e *ExceededError) Error() string {
	if e.Paused {
		return fmt.Sprintf("upstream asked to pause for another %s", e.RetryAfter.Round(time.Millisecond))
	}
	return fmt.Sprintf("rate limit exceeded, retry in %s", e.RetryAfter.Round(time.Millisecond))
}

func (e *ExceededError) Unwrap() error { return ErrExceeded }

// Policy describes a quota for the RateLimit-Policy header.
type Policy struct {
	Quota  int           // calls allowed per Window at the sustained rate, plus burst
	Window time.Duration // the period the quota is stated over
}

// Limiter hands out call slots for one upstream.
type Limiter interface {
	// Wait blocks until a call for key may go, for at most maxWait (and never
	// past ctx's deadline). It returns an *ExceededError when no slot comes
	// in time, or ctx's error when ctx ends first.
	Wait(ctx context.Context, key string, maxWait time.Duration) error
	// WaitBackground is Wait for work that yields to interactive calls
	// (job deliveries): it takes a slot only when one is free now and no
	// Wait is queued, so interactive traffic has priority over it.
	WaitBackground(ctx context.Context, key string, maxWait time.Duration) error
	// Pause holds back every key until the given time. An earlier time than
	// a pause in force does not shorten it.
	Pause(until time.Time)
	// Remaining estimates the slots free now for key, for response headers.
	Remaining(key string) int
	// Policy describes the quota.
	Policy() Policy
}

// budget is how long a caller may wait: maxWait, cut short by ctx's deadline.
func budget(ctx context.Context, now time.Time, maxWait time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) < maxWait {
		return dl.Sub(now)
	}
	return maxWait
}

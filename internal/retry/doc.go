// Package retry decides whether and when a failed upstream call is tried
// again: capped exponential backoff with full jitter, only for idempotent
// requests (or those carrying an Idempotency-Key) unless a route allows all
// methods, and within a Budget that bounds retries to a share of recent
// requests so that retries cannot multiply an outage.
package retry

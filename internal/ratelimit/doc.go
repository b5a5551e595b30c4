// Package ratelimit keeps calls to a third party within its quota.
//
// A Limiter hands out slots per upstream, or per tenant key, and can be paused
// as a whole when the upstream asks callers to back off (a 429 or 503 with
// Retry-After, RateLimit or X-RateLimit-Reset). Local is an in-process token
// bucket (golang.org/x/time/rate); a Redis-backed global limiter implements
// the same interface for several replicas.
package ratelimit

// Package ratelimit keeps calls to a third party within its quota.
//
// A Limiter hands out slots per upstream, or per tenant key, spaced by the
// time calls are released and actually sent, never by when they asked. It
// reads the upstream's answers: a 429 or 503 with Retry-After, or quota
// headers saying none is left (RateLimit, X-RateLimit-*,
// x-ratelimit-*-requests), pause the upstream as a whole, and every call
// not yet sent obeys the pause; with Config.Adaptive, 429s teach it the
// vendor's real rate. Local does this in process (ADR 0003), for one
// replica: several replicas each keep their own pace today.
package ratelimit

// Package proxy is Seawall's request handler: it routes an application's
// request to a configured upstream and protects both sides on the way.
//
// The request path, in order, is written down here once and tested once
// (proxy_test.go):
//
//  1. Proxy.ServeHTTP: set the request id, answer the job views under
//     /_seawall/jobs/, reject what is not a proxied request (absolute-URI,
//     CONNECT, unknown upstream), resolve the path's dot segments, bound
//     the request body and set the overall deadline.
//  2. Route match: the upstream's routes pick the retry policy, timeouts and
//     mode. A cached-mode GET is answered by cached.go from the cache, or
//     filled by one coalesced call through steps 4 and 5.
//  3. upstream.Upstream.Outbound: the outbound request, with the URL
//     rewritten, hop-by-hop, forwarding and control headers dropped
//     (both ways), and the upstream's credentials injected.
//  4. upstream.Upstream.Do, the attempt loop of the upstream runtime
//     (package upstream), which the job workers call too. For each attempt:
//     a. retry gate (attempts after the first): budget, backoff with full jitter;
//     then an open breaker fails the call fast, before it takes a token;
//     b. rate limiter: a slot, in line behind earlier callers, once no pause
//     holds the upstream and the pace allows, waiting up to max_wait;
//     c. circuit breaker: a permit (half-open: one probe at a time), or
//     fail fast with 503;
//     d. endpoint: one of the upstream's endpoints, by latency, in the
//     local zone while it has enough healthy ones, never one isolated or
//     shifted away, and never the one a retry's last attempt failed on
//     (package endpoint, docs/endpoints.md);
//     e. transport, bounded by the per-try timeout up to response headers;
//     the moment the request is written paces the next call (Limiter.Sent),
//     and whether it was written tells an unreachable upstream from an
//     unknown outcome.
//     The outcome feeds the breaker and the endpoint's health (client
//     cancellation and Seawall's own trouble excepted), the answer feeds the limiter (Retry-After and quota
//     headers pause the upstream, a 429 adapts the rate), and retryable
//     failures go round again while the request can be replayed.
//  5. The response is relayed as it streams (Proxy.relay), or the error mapped once to problem+json
//     (errors.go), and one log line and the metrics are written.
//
// The limiter and breaker sit inside the retry loop so that every attempt
// that reaches the upstream is counted against its quota and judged by its
// breaker: retries can never push a third party past its limit.
package proxy

// Package upstream is one third party at run time: its routes, the
// attempt loop (limiter, breaker, endpoint, transport, retries within a
// budget), the outbound request, and its pool of endpoints with their
// health. The app-facing handler (package proxy) and the job workers
// (package jobs) both call it; neither calls the other. A Set is what
// they and the admin API share, built before any of them: the upstreams
// and the limits in force, swapped whole on a config reload, the response
// cache, and the usage meters.
//
// The request path through it is written down in package proxy's doc,
// steps 3 and 4; endpoint health in docs/endpoints.md.
package upstream

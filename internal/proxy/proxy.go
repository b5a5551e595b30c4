package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/tracing"
	"github.com/seawall/seawall/internal/upstream"
)

const requestIDHeader = upstream.RequestIDHeader

// Proxy is the application-facing handler: package doc step 1.
type Proxy struct {
	ups      *upstream.Set // the upstreams, limits and cache in force, shared with the job workers
	log      *slog.Logger
	metrics  *Metrics
	maxEntry int64
	cache    cache.Store
	flights  coalescer
	now      func() time.Time
	clockSet bool // WithClock: the cache reads p.now rather than the request's start

	events      incident.Publisher // the incident events of the upstreams and the cache
	staleEvents incident.Publisher // events, at most one a minute per upstream

	jobs       jobs.Store     // nil: async and deferred modes are off
	background sync.WaitGroup // see goBackground
	routines   *routine.Group
}

// settings returns the limits in force. A request keeps the limits and
// the upstream it found, and finishes under them whatever a reload
// applies meanwhile.
func (p *Proxy) settings() *upstream.Limits { return p.ups.Limits() }

// Option adjusts a Proxy.
type Option func(*Proxy)

// WithJobs gives the proxy its job store, enabling async and deferred
// modes. The store delivers through the upstream set, not through the
// proxy: jobs do not depend on the handler.
func WithJobs(s jobs.Store) Option { return func(p *Proxy) { p.jobs = s } }

// WithClock makes the cache read time from now, for tests.
func WithClock(now func() time.Time) Option {
	return func(p *Proxy) { p.now, p.clockSet = now, true }
}

// Metrics are Seawall's Prometheus metrics, in a registry of their own.
type Metrics = upstream.Metrics

// NewMetrics registers Seawall's metrics and the Go runtime's.
func NewMetrics() *Metrics { return upstream.NewMetrics() }

// New builds the handler of a validated config over the shared parts
// built before it: the upstream set (upstreams, limits, response cache,
// usage) and, with WithJobs, the job store.
func New(cfg *config.Config, ups *upstream.Set, opts ...Option) *Proxy {
	p := &Proxy{
		ups:      ups,
		log:      ups.Logger(),
		metrics:  ups.Metrics(),
		maxEntry: int64(cfg.Cache.MaxEntry),
		cache:    ups.Cache(),
		now:      time.Now,
		events:   ups.Events(),
		routines: ups.Routines(),
	}
	for _, o := range opts {
		o(p)
	}
	p.staleEvents = incident.Throttle(p.events, time.Minute)
	return p
}

// Registry is where the proxy's metrics, and its job store's, are registered.
func (p *Proxy) Registry() *prometheus.Registry { return p.metrics.Registry }

// Upstream returns the named upstream, or nil.
func (p *Proxy) Upstream(name string) *upstream.Upstream { return p.ups.Get(name) }

// Upstreams is the set of upstreams in force, which the job workers
// deliver through too.
func (p *Proxy) Upstreams() *upstream.Set { return p.ups }

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := headerFirst(r.Header, requestIDHeader)
	if rid == "" || len(rid) > 128 {
		rid = newRequestID()
	}
	// One allocation holds the exchange: the handler's call, the upstream
	// runtime's, the deadlines, and the request id's field value.
	x := &exchange{rid: [1]string{rid}}
	w.Header()[requestIDHeader] = x.rid[:]
	if tracing.On() {
		var span trace.Span
		r, span = tracing.StartServer(r)
		defer span.End() // ended with its answer in logRequest; this is for the paths that log none
	}
	dl := &x.dl
	dl.start(w, p.settings().WriteTimeout, start)
	defer dl.end()

	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		w.Header().Set("Connection", "close") // nothing after it read as a request
		if FaultyFraming(r.Context()) {
			err := fmt.Errorf("%w: HTTP/1.0 with Transfer-Encoding, whose framing RFC 9112 §6.1 calls faulty", ErrBadFraming)
			status := writeProblem(w, err, "", rid, 0)
			p.logRequest(r, rid, "", "", status, "seawall", 0, start, err)
			return
		}
	}
	if strings.HasPrefix(r.URL.Path, JobsPrefix) {
		p.serveJob(w, r, rid)
		return
	}
	u, rest, err := p.resolve(r)
	if err != nil {
		name := ""
		if u != nil {
			name = u.Name
		}
		status := writeProblem(w, err, name, rid, 0)
		p.logRequest(r, rid, name, "", status, "seawall", 0, start, err)
		return
	}
	route := u.Match(r, rest)
	mode, err := modeFor(route, r, p.jobs != nil)
	if err != nil {
		status := writeProblem(w, err, u.Name, rid, 0)
		p.logRequest(r, rid, u.Name, route.Name, status, "seawall", 0, start, err)
		return
	}
	x.up = upstream.Call{
		Upstream:  u,
		Route:     route,
		Path:      rest,
		Query:     r.URL.RawQuery,
		RequestID: rid,
		Client:    r.Context(),
	}
	x.c = call{Call: &x.up, start: start, deadlines: dl, interim: &x.ir, overall: &x.overall}
	c := &x.c
	if u.KeyHeader != "" {
		c.Tenant = r.Header.Get(u.KeyHeader)
	}
	if st := p.settings(); r.ContentLength > st.MaxRequest {
		c.err = fmt.Errorf("%w: %d bytes, the limit is %d", ErrRequestTooLarge, r.ContentLength, st.MaxRequest)
		p.finish(w, r, c, writeProblem(w, c.err, u.Name, rid, 0), "seawall")
		return
	}
	if mode == config.ModeAsync || mode == config.ModeDeferred {
		dl.readBody(r, start.Add(p.settings().BodyRead))
		p.serveAsync(w, r, c, rest, mode == config.ModeDeferred)
		return
	}
	// Overall bounds the whole exchange on the sync and cached paths.
	dl.bound(start.Add(route.Overall))
	dl.readBody(r, start.Add(p.settings().BodyRead))
	if mode == config.ModeCached && r.Method == http.MethodGet {
		p.serveCached(w, r, c, rest)
		return
	}
	p.serveSync(w, r, c)
}

// resolve finds the upstream and the upstream-relative escaped path, its
// dot segments resolved (normalizePath): routes match, and the upstream
// receives, the path as resolved, and never one above its base path.
func (p *Proxy) resolve(r *http.Request) (*upstream.Upstream, string, error) {
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		return nil, "", fmt.Errorf("%w: %s %s is not an origin-form request", ErrNotProxy, r.Method, truncate(r.RequestURI, 200))
	}
	path := r.URL.EscapedPath()
	trimmed := strings.TrimPrefix(path, "/")
	name, _, found := strings.Cut(trimmed, "/")
	u := p.ups.Get(name)
	if u == nil {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownUpstream, truncate(name, 100))
	}
	rest := "/"
	if found {
		rest = trimmed[len(name):] // from its slash on: no copy
	}
	rest, err := normalizePath(rest)
	if err != nil {
		return u, "", err
	}
	return u, rest, nil
}

// answerError answers a proxied call that failed with a problem, stating
// the quota on a 429, and returns the status (499 when the client left).
func answerError(w http.ResponseWriter, c *call, err error) int {
	if c.ClientGone() && !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrRequestTimeout) {
		// A malformed or late body is still answered: the client may only
		// have half-closed, or net/http taken the late body for it gone.
		err = ErrClientGone
	}
	c.err = err
	if classify(err).Status == http.StatusTooManyRequests {
		setRateLimitHeaders(w.Header(), c.Upstream, c.Tenant)
	}
	return writeProblem(w, err, c.Upstream.Name, c.RequestID, c.Attempts)
}

// setRateLimitHeaders states the quota (draft-ietf-httpapi-ratelimit-headers).
func setRateLimitHeaders(h http.Header, u *upstream.Upstream, tenant string) {
	pol := u.Policy
	if pol.Quota == 0 {
		return
	}
	w := int(pol.Window / time.Second)
	h.Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, pol.Quota, w))
	reset := max(1, int((u.Limiter.Status().PausedFor+time.Second-1)/time.Second))
	h.Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, u.Limiter.Remaining(tenant), reset))
}

func (p *Proxy) finish(w http.ResponseWriter, r *http.Request, c *call, status int, source string) {
	now := time.Now()
	if c.deadlines != nil {
		c.deadlines.finished = now // the handler is done: the last flush's time runs from here
	}
	c.Route.M.Done(status, source, now.Sub(c.start), tracing.TraceID(r.Context()))
	p.logRequest(r, c.RequestID, c.Upstream.Name, c.Route.Name, status, source, c.Attempts, c.start, c.err)
	if status == StatusClientClosed && source == "seawall" {
		// Nothing was written: returning would let net/http send an empty
		// 200 to a client that only half-closed. Cut the connection. (A
		// vendor's own 499 was relayed whole, as any status is.)
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) logRequest(r *http.Request, rid, upstream, route string, status int, source string, attempts int, start time.Time, err error) {
	tracing.EndServer(r.Context(), r.Method, upstream, route, status, source, attempts, err)
	level := slog.LevelInfo
	if status >= 500 && status != StatusClientClosed {
		level = slog.LevelWarn
	}
	if !p.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", rid),
		slog.String("method", r.Method),
		slog.String("path", truncate(r.URL.Path, 512)),
		slog.String("upstream", upstream),
		slog.String("route", route),
		slog.Int("status", status),
		slog.String("source", source),
		slog.Int("attempts", attempts),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if id := tracing.TraceID(r.Context()); id != "" {
		attrs = append(attrs, slog.String("trace_id", id))
	}
	p.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// newRequestID and truncate are the upstream runtime's.
var (
	newRequestID = upstream.NewRequestID
	truncate     = upstream.Truncate
)

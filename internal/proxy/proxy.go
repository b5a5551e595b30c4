package proxy

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/ratelimit"
)

const requestIDHeader = "Seawall-Request-Id"

// Proxy is the application-facing handler: package doc step 1.
type Proxy struct {
	cur      atomic.Pointer[settings] // swapped whole by Apply
	log      *slog.Logger
	metrics  *Metrics
	maxEntry int64
	cache    cache.Store
	flights  coalescer
	now      func() time.Time

	jobs       jobs.Store     // nil: async and deferred modes are off
	background sync.WaitGroup // see goBackground
}

// settings are what a config reload replaces: the upstreams and the
// limits. A request keeps the upstream it found, and finishes under it
// whatever is applied meanwhile.
type settings struct {
	upstreams     map[string]*Upstream
	maxReq        int64
	maxResp       int64
	bodyRead      time.Duration   // limits.body_read_timeout
	writeTimeout  time.Duration   // limits.write_timeout
	maxResult     int64           // of a deferred job's response body
	callbackHosts map[string]bool // where Seawall-Callback may point
}

// settings returns the settings in force.
func (p *Proxy) settings() *settings { return p.cur.Load() }

// Option adjusts a Proxy.
type Option func(*Proxy)

// WithClock makes the cache read time from now, for tests.
func WithClock(now func() time.Time) Option { return func(p *Proxy) { p.now = now } }

// New builds a proxy from a validated config.
func New(cfg *config.Config, log *slog.Logger, m *Metrics, opts ...Option) *Proxy {
	p := &Proxy{
		log:      log,
		metrics:  m,
		maxEntry: int64(cfg.Cache.MaxEntry),
		now:      time.Now,
	}
	for _, o := range opts {
		o(p)
	}
	store := cache.NewMemory(int64(cfg.Cache.MaxBytes), p.maxEntry, m.cacheEvictions.Inc)
	p.cache = store
	m.watchCacheBytes(store.Bytes)
	p.Apply(cfg)
	m.Registry.MustRegister(limiterCollector{status: p.limiterStatus}, endpointCollector{reports: p.endpointReports})
	return p
}

// Registry is where the proxy's metrics, and its job store's, are registered.
func (p *Proxy) Registry() *prometheus.Registry { return p.metrics.Registry }

// Logger is the proxy's logger.
func (p *Proxy) Logger() *slog.Logger { return p.log }

// Upstream returns the named upstream, or nil.
func (p *Proxy) Upstream(name string) *Upstream { return p.settings().upstreams[name] }

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := r.Header.Get(requestIDHeader)
	if rid == "" || len(rid) > 128 {
		rid = newRequestID()
	}
	w.Header().Set(requestIDHeader, rid)
	dl := p.deadlines(w)
	defer dl.end()

	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		w.Header().Set("Connection", "close") // nothing after it read as a request
		if faultyFraming(r.Context()) {
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
	route := u.route(r, rest)
	mode, err := route.modeFor(r, p.jobs != nil)
	if err != nil {
		status := writeProblem(w, err, u.Name, rid, 0)
		p.logRequest(r, rid, u.Name, route.Name, status, "seawall", 0, start, err)
		return
	}
	c := &call{
		upstream:  u,
		route:     route,
		target:    u.target(rest, r.URL.RawQuery),
		path:      rest,
		query:     r.URL.RawQuery,
		requestID: rid,
		client:    r.Context(),
		start:     start,
		deadlines: dl,
	}
	if u.keyHeader != "" {
		c.tenant = r.Header.Get(u.keyHeader)
	}
	if st := p.settings(); r.ContentLength > st.maxReq {
		c.err = fmt.Errorf("%w: %d bytes, the limit is %d", ErrRequestTooLarge, r.ContentLength, st.maxReq)
		p.finish(w, r, c, writeProblem(w, c.err, u.Name, rid, 0), "seawall")
		return
	}
	if mode == config.ModeAsync || mode == config.ModeDeferred {
		dl.readBody(r, start.Add(p.settings().bodyRead))
		p.serveAsync(w, r, c, rest, mode == config.ModeDeferred)
		return
	}
	// Overall bounds the whole exchange on the sync and cached paths.
	dl.bound(start.Add(route.Overall))
	dl.readBody(r, start.Add(p.settings().bodyRead))
	if mode == config.ModeCached && r.Method == http.MethodGet {
		p.serveCached(w, r, c, rest)
		return
	}
	p.serveSync(w, r, c)
}

// resolve finds the upstream and the upstream-relative escaped path, its
// dot segments resolved (normalizePath): routes match, and the upstream
// receives, the path as resolved, and never one above its base path.
func (p *Proxy) resolve(r *http.Request) (*Upstream, string, error) {
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		return nil, "", fmt.Errorf("%w: %s %s is not an origin-form request", ErrNotProxy, r.Method, truncate(r.RequestURI, 200))
	}
	path := r.URL.EscapedPath()
	name, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	u := p.settings().upstreams[name]
	if u == nil {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownUpstream, truncate(name, 100))
	}
	rest, err := normalizePath("/" + rest)
	if err != nil {
		return u, "", err
	}
	return u, rest, nil
}

// answerError answers a proxied call that failed with a problem, stating
// the quota on a 429, and returns the status (499 when the client left).
func answerError(w http.ResponseWriter, c *call, err error) int {
	if c.clientGone() && !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrRequestTimeout) {
		// A malformed or late body is still answered: the client may only
		// have half-closed, or net/http taken the late body for it gone.
		err = ErrClientGone
	}
	c.err = err
	if status, _, _, _ := classify(err); status == http.StatusTooManyRequests {
		setRateLimitHeaders(w.Header(), c.upstream, c.tenant)
	}
	return writeProblem(w, err, c.upstream.Name, c.requestID, c.attempts)
}

// setRateLimitHeaders states the quota (draft-ietf-httpapi-ratelimit-headers).
func setRateLimitHeaders(h http.Header, u *Upstream, tenant string) {
	pol := u.policy
	if pol.Quota == 0 {
		return
	}
	w := int(pol.Window / time.Second)
	h.Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, pol.Quota, w))
	reset := max(1, int((u.Limiter.Status().PausedFor+time.Second-1)/time.Second))
	h.Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, u.Limiter.Remaining(tenant), reset))
}

func (p *Proxy) finish(w http.ResponseWriter, r *http.Request, c *call, status int, source string) {
	c.route.m.done(status, source, time.Since(c.start))
	p.logRequest(r, c.requestID, c.upstream.Name, c.route.Name, status, source, c.attempts, c.start, c.err)
	if status == StatusClientClosed {
		// Nothing was written: returning would let net/http send an empty
		// 200 to a client that only half-closed. Cut the connection.
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) logRequest(r *http.Request, rid, upstream, route string, status int, source string, attempts int, start time.Time, err error) {
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
	p.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// newRequestID is 96 random bits in hex. A request id must be unique, not
// secret: math/rand/v2's generator, seeded per process, costs no system
// call, where crypto/rand may cost one per request.
func newRequestID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64()) //nolint:gosec // an id, not a secret
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32()) //nolint:gosec // an id, not a secret
	return hex.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// UpstreamStatus is an upstream's live state, for the admin API.
type UpstreamStatus struct {
	Name         string           `json:"name"`
	URL          string           `json:"url"`
	Breaker      string           `json:"breaker"`
	PausedFor    float64          `json:"paused_for_seconds"`
	RateLimitMax int              `json:"rate_limit_quota,omitempty"`
	RateLimit    ratelimit.Status `json:"rate_limit"`
	// Zone is Seawall's own zone, which calls prefer.
	Zone      string            `json:"zone,omitempty"`
	Endpoints []endpoint.Report `json:"endpoints"`
	Shifts    []endpoint.Shift  `json:"shifts"`
}

// Status reports every upstream's live state, sorted by name.
func (p *Proxy) Status() []UpstreamStatus {
	ups := p.settings().upstreams
	out := make([]UpstreamStatus, 0, len(ups))
	for _, u := range ups {
		s := UpstreamStatus{Name: u.Name, URL: u.base.Redacted(), Breaker: "disabled", RateLimitMax: u.policy.Quota}
		if u.Breaker != nil {
			s.Breaker = u.Breaker.State().String()
		}
		s.RateLimit = u.Limiter.Status()
		s.PausedFor = s.RateLimit.PausedFor.Seconds()
		s.Zone = u.zone
		s.Endpoints, s.Shifts = u.eps.reports(time.Now())
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b UpstreamStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// limiterStatus is every upstream's limiter state, for the metrics.
func (p *Proxy) limiterStatus() map[string]ratelimit.Status {
	ups := p.settings().upstreams
	out := make(map[string]ratelimit.Status, len(ups))
	for name, u := range ups {
		out[name] = u.Limiter.Status()
	}
	return out
}

// endpointReports is every upstream's endpoints, for the metrics.
func (p *Proxy) endpointReports() map[string][]endpoint.Report {
	ups := p.settings().upstreams
	out := make(map[string][]endpoint.Report, len(ups))
	for name, u := range ups {
		out[name], _ = u.eps.reports(time.Now())
	}
	return out
}

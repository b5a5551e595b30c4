package upstream

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/h1"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/retry"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/usage"
)

// Upstream is one configured third party at run time: its routes, its
// gates (limiter, breaker, retry budget), its endpoints, and the attempt
// loop that the app-facing handler and the job workers both call.
type Upstream struct {
	Name    string
	Cfg     *config.Upstream // as applied; compared on reload
	Zone    string           // Seawall's own, as applied
	Base    *url.URL         // the first endpoint's
	eps     *endpoints
	headers []injected

	transport http.RoundTripper

	Limiter ratelimit.Limiter
	// KeyHeader names the request header that keys the rate limit (and
	// the cache's identity); empty for none.
	KeyHeader string
	forwarded string        // config.Forwarded*
	maxWait   time.Duration // 0 in reject mode
	Policy    ratelimit.Policy

	Breaker         *breaker.Breaker // nil when disabled
	failureStatuses []retry.StatusRange
	budget          *retry.Budget

	mux    *http.ServeMux
	routes []*Route
	def    *Route
	M      *UpstreamMetrics
	Log    *slog.Logger
	events incident.Publisher
	// Usage counts its billable and saved calls, against its quota.
	Usage *usage.Meter
	// sharedBreaker links the breaker to the other replicas'; nil: none.
	sharedBreaker *sharedBreaker
}

// injected is a header set on every request to an upstream.
type injected struct {
	name  string // canonical
	value []string
}

// Route is the policy a matched request runs under.
type Route struct {
	Name       string
	Retry      retry.Policy
	BufferBody int64
	PerTry     time.Duration
	Overall    time.Duration
	Mode       string       // config.Mode*
	Cache      *CachePolicy // nil: the route cannot serve cached mode
	// Caller tells callers apart under the route's cache policy (the
	// upstream's when the route has none): an Idempotency-Key is scoped
	// to it as a cache entry is.
	Caller Caller
	M      *RouteMetrics
}

// routeIndex is registered on the upstream's mux to identify a route.
type routeIndex int

func (routeIndex) ServeHTTP(http.ResponseWriter, *http.Request) {}

// New builds the upstream name of a validated config; zone is Seawall's
// own; events receives its incident events (nil: none); g starts its
// health ticker, which Close stops.
//
// shared, when not nil, paces the upstream with the other replicas under
// the redis block's failure policy.
func New(name, zone string, c *config.Upstream, m *Metrics, log *slog.Logger, events incident.Publisher, meter *usage.Meter, g *routine.Group, shared *cluster.Upstream, redis *config.Redis) *Upstream {
	if events == nil {
		events = incident.Discard
	}
	if meter == nil {
		meter = usage.NewMeter(name, events)
	}
	meter.Configure(c)
	eps := newEndpoints(name, zone, c, newHealthEvents(log, m, events), m, g) // events name their upstream
	u := &Upstream{
		Name:      name,
		Cfg:       c,
		Zone:      zone,
		Base:      eps.list[0].URL,
		eps:       eps,
		KeyHeader: c.RateLimit.KeyHeader,
		forwarded: c.Forwarded,
		mux:       http.NewServeMux(),
		M:         m.forUpstream(name),
		Log:       log.With(slog.String("upstream", name)),
		events:    events,
		Usage:     meter,
	}
	for k, v := range c.Headers {
		u.headers = append(u.headers, injected{http.CanonicalHeaderKey(k), []string{v.Value()}})
	}
	if c.RateLimit.OnLimit == config.OnLimitWait {
		u.maxWait = c.RateLimit.MaxWait.D()
	}
	lc := ratelimit.Config{
		Rate:     c.RateLimit.Rate.PerSecond(),
		Burst:    c.RateLimit.Burst,
		Headroom: c.RateLimit.Headroom / 100,
		Adaptive: c.RateLimit.Adaptive,
		OnEvent:  u.limiterEvent,
	}
	if shared != nil {
		global := ratelimit.NewGlobal(ratelimit.GlobalConfig{Config: lc, Closed: redis.OnFailure == config.RedisOnFailureClosed}, shared)
		u.Limiter, u.Policy = global, global.Policy()
	} else {
		local := ratelimit.NewLocal(lc)
		u.Limiter, u.Policy = local, local.Policy()
	}
	u.Breaker = newBreaker(c.Breaker, func(tr breaker.Transition) {
		u.breakerChanged(tr)
		if u.sharedBreaker != nil {
			u.sharedBreaker.changed(tr)
		}
	})
	if shared != nil && u.Breaker != nil {
		u.sharedBreaker = newSharedBreaker(u.Breaker, shared, u.Log)
		u.sharedBreaker.zoneChanged = u.zoneChanged
		u.sharedBreaker.start(g, name)
	}
	u.failureStatuses = statusRanges(c.Breaker.FailureStatuses)
	u.budget = retry.NewBudget(c.Retry.Budget.Ratio, c.Retry.Budget.MinPerSecond, nil)
	u.def = newRoute("default", c.Retry, c.Timeouts.PerTry, c.Timeouts.Overall, u.M)
	u.def.Mode, u.def.Caller = c.Mode, newCaller(c.Cache, u.KeyHeader)
	u.def.Cache = newCachePolicy(c.Cache, u.def.Caller)
	for i, rc := range c.Routes {
		rt := newRoute(rc.Name, rc.Retry, rc.Timeouts.PerTry, rc.Timeouts.Overall, u.M)
		rt.Mode, rt.Caller = rc.Mode, newCaller(cmp.Or(rc.Cache, c.Cache), u.KeyHeader)
		rt.Cache = newCachePolicy(rc.Cache, rt.Caller)
		u.routes = append(u.routes, rt)
		u.mux.Handle(rc.Match, routeIndex(i)) // validated by config
	}
	tlsConfig, err := c.TLS.ClientConfig()
	if err != nil {
		// validate loaded these files; one that went bad since fails every
		// call with the reason, rather than the process.
		u.Log.Error("upstream TLS settings unusable", slog.String("error", err.Error()))
		u.transport = failing{fmt.Errorf("%w: %w", ErrUpstreamTLS, err)}
	} else {
		u.transport = newTransport(c.Timeouts.Connect.D(), tlsConfig, c.HTTP2)
	}
	return u
}

// failing is a transport that fails every call with err.
type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

func newBreaker(c config.Breaker, changed func(breaker.Transition)) *breaker.Breaker {
	if c.Disabled {
		return nil
	}
	changed(breaker.Transition{To: breaker.Closed})
	return breaker.New(breaker.Config{
		Window:          c.Window.D(),
		MinCalls:        c.MinCalls,
		FailureRate:     c.FailureRate,
		SlowCallRate:    c.SlowCallRate,
		SlowCall:        c.SlowCallDuration.D(),
		OpenDuration:    c.OpenDuration.D(),
		MaxOpenDuration: c.MaxOpenDuration.D(),
		HalfOpenCalls:   c.HalfOpenCalls,
		OnStateChange:   changed,
	})
}

func newRoute(name string, c config.Retry, perTry, overall config.Duration, m *UpstreamMetrics) *Route {
	return &Route{
		Name: name,
		Retry: retry.Policy{
			MaxAttempts: c.MaxAttempts,
			BaseDelay:   c.BaseDelay.D(),
			MaxDelay:    c.MaxDelay.D(),
			Statuses:    statusRanges(c.Statuses),
			AllMethods:  c.AllMethods,
		},
		BufferBody: int64(c.BufferBody),
		PerTry:     perTry.D(),
		Overall:    overall.D(),
		M:          m.forRoute(name),
	}
}

func statusRanges(list []string) []retry.StatusRange {
	out := make([]retry.StatusRange, 0, len(list))
	for _, s := range list {
		lo, hi, _ := config.ParseStatus(s) // validated
		out = append(out, retry.StatusRange{Lo: lo, Hi: hi})
	}
	return out
}

// newTransport is the upstream's HTTP client: Seawall's own HTTP/1.1
// client (internal/h1, ADR 0004), or with http2 net/http's Transport,
// which speaks HTTP/2 to an HTTPS upstream that offers it.
func newTransport(connect time.Duration, tlsConfig *tls.Config, http2 bool) http.RoundTripper {
	if !http2 {
		return h1.New(h1.Options{Connect: connect, TLS: tlsConfig}) // 256 idle per host, 90 s: its defaults, as for net/http below
	}
	d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Transport{
		TLSClientConfig:       tlsConfig,
		Proxy:                 nil, // never chain through an environment proxy by surprise
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   connect,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Match picks the route for a request whose upstream-relative path is
// path, escaped. Routes match the path as a vendor that decodes it reads
// it: an encoded slash is a slash, and a segment's path parameters
// (";jsessionid=...", as Java servers strip them) are not part of it, so
// that neither spelling slips a request past its route's policy.
func (u *Upstream) Match(r *http.Request, path string) *Route {
	if len(u.routes) == 0 {
		return u.def
	}
	probe := &http.Request{Method: r.Method, Host: r.Host, URL: &url.URL{Path: vendorReads(path)}}
	if h, _ := u.mux.Handler(probe); h != nil {
		if i, ok := h.(routeIndex); ok {
			return u.routes[i]
		}
	}
	return u.def
}

// vendorReads is an escaped path as a vendor that decodes it reads it:
// each segment without its path parameters, then percent-decoded, an
// encoded slash becoming a separator.
func vendorReads(escaped string) string {
	if !strings.ContainsAny(escaped, "%;") {
		return escaped
	}
	segs := strings.Split(escaped, "/")
	for i, seg := range segs {
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			segs[i] = seg[:j]
		}
	}
	decoded, err := url.PathUnescape(strings.Join(segs, "/"))
	if err != nil {
		return escaped // the handler refused what does not decode
	}
	return decoded
}

// Target builds the upstream URL for an upstream-relative escaped path,
// on the first endpoint; each attempt moves it to the endpoint it picks.
func (u *Upstream) Target(escapedPath, rawQuery string) *url.URL {
	return endpointTarget(u.Base, escapedPath, rawQuery)
}

// Close stops the upstream's health ticker; calls under way finish.
func (u *Upstream) Close() {
	u.eps.close()
	if u.sharedBreaker != nil {
		u.sharedBreaker.close()
	}
}

// CloseIdleConnections closes the transport's idle connections, when an
// upstream is retired; calls under way keep theirs.
func (u *Upstream) CloseIdleConnections() {
	if t, ok := u.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// zoneChanged tells of a change of the verdict on this replica's zone:
// sick (its replicas see the upstream failing while another zone's see it
// healthy), or not any more.
func (u *Upstream) zoneChanged(v cluster.ZoneVerdict) {
	if v.Sick && !v.Overridden {
		why := v.Evidence(u.Name)
		u.Log.Warn("this replica's zone is unready: "+why, "zone", v.Zone)
		u.events.Publish(incident.Event{Type: incident.ZoneUnready, Upstream: u.Name, Zone: v.Zone, Severity: incident.Warning,
			Summary: "zone " + v.Zone + " unready: " + why, Evidence: map[string]any{"zones": v.Zones}})
		return
	}
	u.Log.Info("this replica's zone is ready again", "zone", v.Zone)
	u.events.Publish(incident.Event{Type: incident.ZoneReady, Upstream: u.Name, Zone: v.Zone, Severity: incident.Info,
		Summary: "zone " + v.Zone + " ready again", Evidence: map[string]any{"zones": v.Zones, "overridden": v.Overridden}})
}

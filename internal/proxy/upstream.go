package proxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/retry"
)

// Upstream is one configured third party at run time.
type Upstream struct {
	Name    string
	cfg     *config.Upstream // as applied; compared on reload
	zone    string           // Seawall's own, as applied
	base    *url.URL         // the first endpoint's
	eps     *endpoints
	headers []injected

	transport http.RoundTripper

	Limiter   ratelimit.Limiter
	keyHeader string
	forwarded string        // config.Forwarded*
	maxWait   time.Duration // 0 in reject mode
	policy    ratelimit.Policy

	Breaker         *breaker.Breaker // nil when disabled
	failureStatuses []retry.StatusRange
	budget          *retry.Budget

	mux    *http.ServeMux
	routes []*Route
	def    *Route
	m      *upstreamMetrics
	log    *slog.Logger
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
	mode       string
	cache      *routeCache // nil: the route cannot serve cached mode
	m          *routeMetrics
}

// modeFor picks a request's access mode: the one it asks for with
// Seawall-Mode where the route allows it, deferred for Prefer:
// respond-async when the job store is open, else the route's.
func (rt *Route) modeFor(r *http.Request, queue bool) (string, error) {
	switch m := r.Header.Get("Seawall-Mode"); m {
	case "":
		if preferAsync(r.Header) && queue {
			return config.ModeDeferred, nil
		}
		if (rt.mode == config.ModeAsync || rt.mode == config.ModeDeferred) && !queue {
			return "", fmt.Errorf("%w: %s needs the job store, which is not open", ErrUnsupportedMode, rt.mode)
		}
		return rt.mode, nil
	case config.ModeAsync, config.ModeDeferred:
		if !queue {
			return "", fmt.Errorf("%w: %s needs a route in async or deferred mode, which opens the job store", ErrUnsupportedMode, m)
		}
		return m, nil
	case config.ModeSync:
		return m, nil
	case config.ModeCached:
		if rt.cache == nil {
			return "", fmt.Errorf("%w: route %s has no cache configured", ErrUnsupportedMode, rt.Name)
		}
		return m, nil
	default:
		return "", fmt.Errorf("%w: %q (this Seawall serves sync, cached, async and deferred)", ErrUnsupportedMode, truncate(m, 40))
	}
}

// preferAsync reports whether the request carries Prefer: respond-async
// (RFC 7240), among other preferences or not.
func preferAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), ";")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

// routeIndex is registered on the upstream's mux to identify a route.
type routeIndex int

func (routeIndex) ServeHTTP(http.ResponseWriter, *http.Request) {}

func newUpstream(name, zone string, c *config.Upstream, p *Proxy) *Upstream {
	log := p.log.With(slog.String("upstream", name))
	eps := newEndpoints(name, zone, c, newHealthEvents(p.log, p.metrics), p.metrics) // events name their upstream
	u := &Upstream{
		Name:      name,
		cfg:       c,
		zone:      zone,
		base:      eps.list[0].URL,
		eps:       eps,
		keyHeader: c.RateLimit.KeyHeader,
		forwarded: c.Forwarded,
		mux:       http.NewServeMux(),
		m:         p.metrics.forUpstream(name),
		log:       log,
	}
	for k, v := range c.Headers {
		u.headers = append(u.headers, injected{http.CanonicalHeaderKey(k), []string{v.Value()}})
	}
	if c.RateLimit.OnLimit == config.OnLimitWait {
		u.maxWait = c.RateLimit.MaxWait.D()
	}
	local := ratelimit.NewLocal(ratelimit.Config{
		Rate:     c.RateLimit.Rate.PerSecond(),
		Burst:    c.RateLimit.Burst,
		Headroom: c.RateLimit.Headroom / 100,
		Adaptive: c.RateLimit.Adaptive,
		OnEvent:  u.limiterEvent,
	})
	u.Limiter, u.policy = local, local.Policy()
	u.Breaker = newBreaker(c.Breaker, u.breakerChanged)
	u.failureStatuses = statusRanges(c.Breaker.FailureStatuses)
	u.budget = retry.NewBudget(c.Retry.Budget.Ratio, c.Retry.Budget.MinPerSecond, nil)
	u.def = newRoute("default", c.Retry, c.Timeouts.PerTry, c.Timeouts.Overall, u.m)
	u.def.mode, u.def.cache = c.Mode, newRouteCache(c.Cache, u.keyHeader)
	for i, rc := range c.Routes {
		rt := newRoute(rc.Name, rc.Retry, rc.Timeouts.PerTry, rc.Timeouts.Overall, u.m)
		rt.mode, rt.cache = rc.Mode, newRouteCache(rc.Cache, u.keyHeader)
		u.routes = append(u.routes, rt)
		u.mux.Handle(rc.Match, routeIndex(i)) // validated by config
	}
	tlsConfig, err := c.TLS.ClientConfig()
	if err != nil {
		// validate loaded these files; one that went bad since fails every
		// call with the reason, rather than the process.
		u.log.Error("upstream TLS settings unusable", slog.String("error", err.Error()))
		u.transport = failing{fmt.Errorf("%w: %w", ErrUpstreamTLS, err)}
	} else {
		u.transport = newTransport(c.Timeouts.Connect.D(), tlsConfig)
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

func newRoute(name string, c config.Retry, perTry, overall config.Duration, m *upstreamMetrics) *Route {
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
		m:          m.forRoute(name),
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

func newTransport(connect time.Duration, tlsConfig *tls.Config) *http.Transport {
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

// route picks the route for a request whose upstream-relative path is path.
func (u *Upstream) route(r *http.Request, path string) *Route {
	if len(u.routes) == 0 {
		return u.def
	}
	decoded, _ := url.PathUnescape(path) // normalizePath refused what does not decode
	probe := &http.Request{Method: r.Method, Host: r.Host, URL: &url.URL{Path: decoded, RawPath: path}}
	if h, _ := u.mux.Handler(probe); h != nil {
		if i, ok := h.(routeIndex); ok {
			return u.routes[i]
		}
	}
	return u.def
}

// target builds the upstream URL for an upstream-relative escaped path,
// on the first endpoint; each attempt moves it to the endpoint it picks.
func (u *Upstream) target(escapedPath, rawQuery string) *url.URL {
	return endpointTarget(u.base, escapedPath, rawQuery)
}

// copyBuffers lend the response relays their copy buffers.
var copyBuffers = newPool(func() *[]byte { b := make([]byte, 32<<10); return &b })

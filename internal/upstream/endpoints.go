package upstream

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/routine"
)

// endpoints are an upstream's addresses at run time. One endpoint needs
// no pool: its calls skip the balancer and the health bookkeeping.
type endpoints struct {
	list []*endpoint.Endpoint // in configured order
	pool *endpoint.Pool       // nil for one endpoint
	m    map[*endpoint.Endpoint]*endpointMetrics
	stop chan struct{}
	once sync.Once
}

func newEndpoints(name, zone string, c *config.Upstream, pub endpoint.Publisher, m *Metrics, g *routine.Group) *endpoints {
	es := &endpoints{m: map[*endpoint.Endpoint]*endpointMetrics{}}
	for _, ec := range c.Endpoints {
		u, _ := url.Parse(ec.URL) // validated
		e := endpoint.NewEndpoint(u, ec.Zone, ec.Weight)
		es.list = append(es.list, e)
		es.m[e] = m.forEndpoint(name, e)
	}
	if len(es.list) > 1 {
		es.pool = endpoint.NewPool(name, zone, es.list, endpoint.PoolConfigFrom(c.Health), pub)
		es.stop = make(chan struct{})
		g.Go("endpoint health "+name, func() { es.pool.Run(es.stop) })
	}
	return es
}

// close stops the health ticker of a retired upstream; calls under way
// finish on the endpoints they have.
func (es *endpoints) close() {
	if es.stop != nil {
		es.once.Do(func() { close(es.stop) })
	}
}

// pick chooses the endpoint for an attempt, away from the one the last
// attempt failed on (avoid) when another is available; done must follow.
func (es *endpoints) pick(avoid *endpoint.Endpoint) *endpoint.Endpoint {
	if es.pool == nil {
		return es.list[0]
	}
	e := es.pool.Pick(time.Now(), avoid)
	e.Start()
	return e
}

// done records an attempt's end on e: failed says it failed (a connect
// error, a timeout, a 5xx or a 429); judged false means it says nothing
// of e's health (the client went away, Seawall would not send it).
func (es *endpoints) done(e *endpoint.Endpoint, took time.Duration, judged, failed bool) {
	em := es.m[e]
	if es.pool == nil {
		if judged {
			em.record(took, failed)
		}
		return
	}
	if !judged {
		es.pool.Release(e)
		return
	}
	em.record(took, failed)
	es.pool.Done(e, time.Now(), took, failed)
}

// reports describes the endpoints and the shifts in force. One endpoint
// is never judged: it is healthy, with all the calls.
func (es *endpoints) reports(now time.Time) ([]endpoint.Report, []endpoint.Shift) {
	if es.pool == nil {
		e := es.list[0]
		return []endpoint.Report{{URL: e.URL.Redacted(), Zone: e.Zone, Weight: e.Weight, State: endpoint.Healthy, Share: 1}}, []endpoint.Shift{}
	}
	return es.pool.Reports(now), es.pool.Shifts(now)
}

// target builds the URL of an upstream-relative escaped path on e.
func endpointTarget(base *url.URL, escapedPath, rawQuery string) *url.URL {
	t := *base
	joined := strings.TrimSuffix(base.EscapedPath(), "/") + escapedPath
	t.Path, _ = url.PathUnescape(joined)
	t.RawPath = joined
	t.RawQuery = rawQuery
	return &t
}

// healthFailure says whether an attempt's result counts against its
// endpoint's health: a connect error, a timeout, a 5xx or a 429.
func healthFailure(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// healthEvents logs isolations, restores and shifts with their evidence
// and counts them; incident signals will consume the same events.
type healthEvents struct {
	log    endpoint.LogPublisher
	m      *Metrics
	events incident.Publisher
}

func (h healthEvents) Publish(e endpoint.Event) {
	h.log.Publish(e)
	h.m.endpointEvents.WithLabelValues(e.Upstream, e.Kind).Inc()
	h.events.Publish(endpointEvent(e))
}

// endpointEvent is an endpoint's event as an incident event: a zone
// isolated is an error, an endpoint a warning, the rest information.
func endpointEvent(e endpoint.Event) incident.Event {
	ev := incident.Event{Time: e.Time, Upstream: e.Upstream, Endpoint: e.Endpoint, Zone: e.Zone, Severity: incident.Info, Evidence: map[string]any{}}
	what := "endpoint " + e.Endpoint
	if e.Endpoint == "" {
		what = "zone " + e.Zone
	}
	switch e.Kind {
	case "isolated":
		ev.Type, ev.Severity = incident.EndpointIsolated, incident.Warning
		if e.Zone != "" {
			ev.Severity = incident.Error
		}
	case "restored":
		ev.Type = incident.EndpointRestored
	case "shift-added":
		ev.Type = incident.ShiftAdded
	case "shift-removed":
		ev.Type = incident.ShiftRemoved
	default:
		ev.Type = incident.ShiftExpired
	}
	ev.Summary = fmt.Sprintf("%s %s: %s", what, strings.TrimPrefix(ev.Type, "endpoint."), e.Reason)
	if e.Figures != nil {
		ev.Evidence["figures"] = e.Figures.String()
	}
	if len(e.Peers) > 0 {
		peers := make([]string, len(e.Peers))
		for i, f := range e.Peers {
			peers[i] = f.String()
		}
		ev.Evidence["peers"] = peers
	}
	return ev
}

// endpointMetrics are one endpoint's metrics, with labels bound.
type endpointMetrics struct {
	calls, failures prometheus.Counter
	latency         prometheus.Observer
}

func (em *endpointMetrics) record(took time.Duration, failed bool) {
	em.calls.Inc()
	if failed {
		em.failures.Inc()
	}
	em.latency.Observe(took.Seconds())
}

func (m *Metrics) forEndpoint(upstream string, e *endpoint.Endpoint) *endpointMetrics {
	u, z := e.URL.Redacted(), e.Zone // a label is public: never the URL's password
	return &endpointMetrics{
		calls:    m.endpointCalls.WithLabelValues(upstream, u, z),
		failures: m.endpointFailures.WithLabelValues(upstream, u, z),
		latency:  m.endpointLatency.WithLabelValues(upstream, u, z),
	}
}

func newHealthEvents(log *slog.Logger, m *Metrics, events incident.Publisher) healthEvents {
	return healthEvents{log: endpoint.LogPublisher{Log: log}, m: m, events: events}
}

package upstream

import (
	"errors"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/usage"
)

// Metrics are Seawall's Prometheus metrics, in a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry
	// Traffic holds the requests', attempts' and refusals' series alone,
	// for the dashboard's history: a Gather of it costs a fraction of the
	// whole registry's (no runtime, process or endpoint series).
	Traffic *prometheus.Registry

	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	attempts          *prometheus.CounterVec
	attemptDuration   *prometheus.HistogramVec
	retries           *prometheus.CounterVec
	budgetExhausted   *prometheus.CounterVec
	breakerState      *prometheus.GaugeVec
	breakerChanges    *prometheus.CounterVec
	breakerRejections *prometheus.CounterVec
	limiterWait       *prometheus.HistogramVec
	limiterRejections *prometheus.CounterVec
	pauses            *prometheus.CounterVec
	rateChanges       *prometheus.CounterVec
	cacheLookups      *prometheus.CounterVec
	cacheSaved        *prometheus.CounterVec
	CacheEvictions    prometheus.Counter
	endpointCalls     *prometheus.CounterVec
	endpointFailures  *prometheus.CounterVec
	endpointLatency   *prometheus.HistogramVec
	endpointEvents    *prometheus.CounterVec
}

// NewMetrics registers Seawall's metrics and the Go runtime's.
func NewMetrics() *Metrics {
	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "seawall", Name: name, Help: help}, labels)
	}
	h := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "seawall", Name: name, Help: help, Buckets: latency}, labels)
	}
	m := &Metrics{
		Registry:          prometheus.NewRegistry(),
		requests:          f("requests_total", "Requests answered, by upstream, route, status code and source (upstream or seawall).", "upstream", "route", "code", "source"),
		duration:          h("request_duration_seconds", "Time to answer a request, retries and waits included.", "upstream", "route"),
		attempts:          f("upstream_attempts_total", "Calls made to an upstream, by result (status class, timeout or error).", "upstream", "result"),
		attemptDuration:   h("upstream_attempt_duration_seconds", "Time of one upstream call, up to its response headers.", "upstream"),
		retries:           f("retries_total", "Retries made.", "upstream"),
		budgetExhausted:   f("retry_budget_exhausted_total", "Retries not made because the retry budget was spent.", "upstream"),
		breakerChanges:    f("breaker_transitions_total", "Circuit breaker state changes, by the state entered.", "upstream", "state"),
		breakerRejections: f("breaker_rejections_total", "Calls refused by an open circuit breaker.", "upstream"),
		limiterRejections: f("ratelimit_rejections_total", "Calls refused by the rate limiter, by reason (quota or paused).", "upstream", "reason"),
		pauses:            f("upstream_pauses_total", "Pauses of an upstream: a 429/503 with Retry-After, or quota headers saying none is left.", "upstream"),
		rateChanges:       f("ratelimit_rate_changes_total", "Changes of the adaptive rate made on a 429, or on a pause of an unlimited upstream.", "upstream"),
		cacheLookups:      f("cache_lookups_total", "Cached-mode requests, by result (hit, miss, stale, revalidated, bypass).", "upstream", "result"),
		cacheSaved:        f("cache_upstream_calls_saved_total", "Upstream calls the cache saved: hits, stale answers and coalesced misses.", "upstream"),
		CacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "seawall", Name: "cache_evictions_total",
			Help: "Cache entries evicted to stay within cache.max_bytes."}),
		endpointCalls:    f("endpoint_calls_total", "Calls made to an upstream's endpoint.", "upstream", "endpoint", "zone"),
		endpointFailures: f("endpoint_failures_total", "Calls to an endpoint that failed: a connect error, a timeout, a 5xx or a 429.", "upstream", "endpoint", "zone"),
		endpointLatency:  h("endpoint_call_duration_seconds", "Time of one call to an endpoint, up to its response headers or its failure.", "upstream", "endpoint", "zone"),
		endpointEvents:   f("endpoint_events_total", "Endpoint isolations, restores and shifts, by kind.", "upstream", "kind"),
		limiterWait:      h("ratelimit_wait_seconds", "Time calls waited for a rate-limit slot.", "upstream"),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "seawall", Name: "breaker_state",
			Help: "1 for the breaker's current state, 0 for the others."}, []string{"upstream", "state"}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.attempts, m.attemptDuration, m.retries, m.budgetExhausted,
		m.breakerState, m.breakerChanges, m.breakerRejections, m.cacheLookups, m.cacheSaved, m.CacheEvictions, m.limiterWait, m.limiterRejections, m.pauses, m.rateChanges,
		m.endpointCalls, m.endpointFailures, m.endpointLatency, m.endpointEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Traffic = prometheus.NewRegistry()
	m.Traffic.MustRegister(m.requests, m.duration, m.attempts, m.breakerRejections, m.limiterRejections, m.cacheLookups)
	return m
}

// WatchCacheBytes exports the cache's size as a gauge.
func (m *Metrics) WatchCacheBytes(bytes func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "seawall", Name: "cache_bytes",
		Help: "Bytes held by the response cache."}, func() float64 { return float64(bytes()) }))
}

// CacheLookup counts a cached-mode request by its result.
func (um *UpstreamMetrics) CacheLookup(result string) {
	um.lookups.get(result).Inc()
}

// children are the counters of a CounterVec by the label values that
// vary, found without the vector's hashing and locking once each has been
// seen: a request counts three of them. A lookup is a read of an
// immutable map; a new label value copies it, which happens a few times
// per series in a process's life (the values are few: status codes,
// sources, results).
type children[K comparable] struct {
	vec    *prometheus.CounterVec
	values func(K) []string // a key's label values, in the vector's order
	mu     sync.Mutex       // held while adding
	seen   atomic.Pointer[map[K]prometheus.Counter]
}

func newChildren[K comparable](vec *prometheus.CounterVec, values func(K) []string) *children[K] {
	return &children[K]{vec: vec, values: values}
}

func (c *children[K]) get(k K) prometheus.Counter {
	if m := c.seen.Load(); m != nil {
		if ctr, ok := (*m)[k]; ok {
			return ctr
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[K]prometheus.Counter{}
	if old := c.seen.Load(); old != nil {
		if ctr, ok := (*old)[k]; ok {
			return ctr
		}
		next = maps.Clone(*old)
	}
	ctr := c.vec.WithLabelValues(c.values(k)...)
	next[k] = ctr
	c.seen.Store(&next)
	return ctr
}

// UpstreamMetrics are the metrics of one upstream, with labels bound.
type UpstreamMetrics struct {
	m                                                   *Metrics
	name                                                string
	retries, budgetExhausted, breakerRejections, pauses prometheus.Counter
	rateChanges                                         prometheus.Counter
	quotaRejections, pausedRejections                   prometheus.Counter
	attemptDuration, limiterWait                        prometheus.Observer
	states                                              [3]prometheus.Gauge
	entered                                             [3]prometheus.Counter
	CacheSaved                                          prometheus.Counter // upstream calls the cache saved
	lookups, attempts                                   *children[string]  // by result
}

func (m *Metrics) forUpstream(name string) *UpstreamMetrics {
	um := &UpstreamMetrics{
		m: m, name: name,
		retries:           m.retries.WithLabelValues(name),
		budgetExhausted:   m.budgetExhausted.WithLabelValues(name),
		breakerRejections: m.breakerRejections.WithLabelValues(name),
		pauses:            m.pauses.WithLabelValues(name),
		rateChanges:       m.rateChanges.WithLabelValues(name),
		quotaRejections:   m.limiterRejections.WithLabelValues(name, "quota"),
		pausedRejections:  m.limiterRejections.WithLabelValues(name, "paused"),
		attemptDuration:   m.attemptDuration.WithLabelValues(name),
		limiterWait:       m.limiterWait.WithLabelValues(name),
		CacheSaved:        m.cacheSaved.WithLabelValues(name),
		lookups:           newChildren(m.cacheLookups, func(result string) []string { return []string{name, result} }),
		attempts:          newChildren(m.attempts, func(result string) []string { return []string{name, result} }),
	}
	for s := breaker.Closed; s <= breaker.HalfOpen; s++ {
		um.states[s] = m.breakerState.WithLabelValues(name, s.String())
		um.entered[s] = m.breakerChanges.WithLabelValues(name, s.String())
	}
	return um
}

func (um *UpstreamMetrics) breakerChanged(s breaker.State) {
	um.entered[s].Inc()
	um.breakerState(s)
}

func (um *UpstreamMetrics) breakerState(s breaker.State) {
	for i, g := range um.states {
		if breaker.State(i) == s {
			g.Set(1)
		} else {
			g.Set(0)
		}
	}
}

func (um *UpstreamMetrics) limited(err error) {
	var ex *ratelimit.ExceededError
	if errors.As(err, &ex) && ex.Paused {
		um.pausedRejections.Inc()
	} else if ex != nil {
		um.quotaRejections.Inc()
	}
}

func (um *UpstreamMetrics) attempt(resp *http.Response, err error, elapsed time.Duration, traceID string) {
	result := "error"
	switch {
	case errors.Is(err, ErrClientGone):
		result = "canceled"
	case errors.Is(err, ErrUpstreamTimeout):
		result = "timeout"
	case errors.Is(err, ErrOverloaded):
		result = "local"
	case resp != nil && resp.StatusCode/100 < len(statusClasses):
		result = statusClasses[resp.StatusCode/100]
	}
	um.attempts.get(result).Inc()
	observe(um.attemptDuration, elapsed, traceID)
}

// RouteMetrics are the metrics of one route, with labels bound.
type RouteMetrics struct {
	requests *children[answered]
	duration prometheus.Observer
}

// answered is a request's status code and source.
type answered struct {
	code   int
	source string
}

func (um *UpstreamMetrics) forRoute(route string) *RouteMetrics {
	return &RouteMetrics{
		requests: newChildren(um.m.requests, func(a answered) []string { return []string{um.name, route, codeLabel(a.code), a.source} }),
		duration: um.m.duration.WithLabelValues(um.name, route),
	}
}

// statusClasses and statusCodes are label values made once, not per request.
var (
	statusClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}
	statusCodes   = func() (s [600]string) {
		for i := range s {
			s[i] = strconv.Itoa(i)
		}
		return s
	}()
)

// Done counts a request answered on the route; a sampled trace's id,
// when given, is the latency's exemplar.
func (rm *RouteMetrics) Done(code int, source string, elapsed time.Duration, traceID string) {
	rm.requests.get(answered{code, source}).Inc()
	observe(rm.duration, elapsed, traceID)
}

// observe adds elapsed to a latency histogram, with traceID as its
// exemplar when there is one (served with /metrics in OpenMetrics).
func observe(h prometheus.Observer, elapsed time.Duration, traceID string) {
	if eo, ok := h.(prometheus.ExemplarObserver); ok && traceID != "" {
		eo.ObserveWithExemplar(elapsed.Seconds(), prometheus.Labels{"trace_id": traceID})
		return
	}
	h.Observe(elapsed.Seconds())
}

// codeLabel is a status code's label value.
func codeLabel(code int) string {
	if code >= 0 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}

// limiterCollector reports each upstream's limiter state when scraped.
type limiterCollector struct {
	status func() map[string]ratelimit.Status
}

var (
	rateDesc = prometheus.NewDesc("seawall_ratelimit_rate", "Calls a second: the configured rate and the effective one (after headroom and adaptation); 0 means unlimited.",
		[]string{"upstream", "kind"}, nil)
	pausedDesc = prometheus.NewDesc("seawall_ratelimit_paused_seconds", "How much of an upstream's pause remains.", []string{"upstream"}, nil)
	quotaDesc  = prometheus.NewDesc("seawall_ratelimit_vendor_quota_remaining", "The vendor's remaining quota, as its headers last stated it less the calls sent since; absent when unknown.", []string{"upstream"}, nil)
)

func (c limiterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rateDesc
	ch <- pausedDesc
	ch <- quotaDesc
}

func (c limiterCollector) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.status() {
		ch <- prometheus.MustNewConstMetric(rateDesc, prometheus.GaugeValue, s.Configured, name, "configured")
		ch <- prometheus.MustNewConstMetric(rateDesc, prometheus.GaugeValue, s.Effective, name, "effective")
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, s.PausedFor.Seconds(), name)
		if s.QuotaRemaining >= 0 {
			ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, float64(s.QuotaRemaining), name)
		}
	}
}

// endpointCollector reports each endpoint's state and isolations when
// scraped.
type endpointCollector struct {
	reports func() map[string][]endpoint.Report
}

var (
	endpointStateDesc = prometheus.NewDesc("seawall_endpoint_state", "1 for the endpoint's current state (healthy, isolated, probing), 0 for the others.",
		[]string{"upstream", "endpoint", "zone", "state"}, nil)
	endpointIsolationsDesc = prometheus.NewDesc("seawall_endpoint_isolations_total", "Times the endpoint was isolated.",
		[]string{"upstream", "endpoint", "zone"}, nil)
	endpointShiftedDesc = prometheus.NewDesc("seawall_endpoint_shifted", "1 while a manual shift moves traffic away from the endpoint.",
		[]string{"upstream", "endpoint", "zone"}, nil)
)

func (c endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointStateDesc
	ch <- endpointIsolationsDesc
	ch <- endpointShiftedDesc
}

func (c endpointCollector) Collect(ch chan<- prometheus.Metric) {
	for name, rs := range c.reports() {
		for _, r := range rs {
			for _, s := range []endpoint.State{endpoint.Healthy, endpoint.Isolated, endpoint.Probing} {
				ch <- prometheus.MustNewConstMetric(endpointStateDesc, prometheus.GaugeValue, b2f(r.State == s), name, r.URL, r.Zone, string(s))
			}
			ch <- prometheus.MustNewConstMetric(endpointIsolationsDesc, prometheus.CounterValue, float64(r.Isolations), name, r.URL, r.Zone)
			ch <- prometheus.MustNewConstMetric(endpointShiftedDesc, prometheus.GaugeValue, b2f(r.Shifted), name, r.URL, r.Zone)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// usageCollector reports the usage meters when scraped.
type usageCollector struct {
	reports func() []usage.Report
}

var (
	usageCallsDesc = prometheus.NewDesc("seawall_usage_calls", "Calls in the current local day or month: billable (reached the vendor, retries and probes included), or saved by the cache, deduplication or failing fast.",
		[]string{"upstream", "period", "kind"}, nil)
	usageMoneyDesc = prometheus.NewDesc("seawall_usage_money", "Money spent and saved in the current local day or month, in the upstream's currency (cost.per_call × calls).",
		[]string{"upstream", "period", "kind", "currency"}, nil)
	usageQuotaDesc = prometheus.NewDesc("seawall_usage_quota_used_ratio", "The share of the upstream's daily or monthly quota used, the larger of the two.",
		[]string{"upstream"}, nil)
)

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- usageCallsDesc
	ch <- usageMoneyDesc
	ch <- usageQuotaDesc
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.reports() {
		for _, p := range []struct {
			name string
			f    usage.Figures
		}{{"day", r.Today}, {"month", r.Month}} {
			for kind, n := range map[string]int64{"billable": p.f.Billable, "saved_by_cache": p.f.SavedCache, "saved_by_dedup": p.f.SavedDedup, "saved_by_failing_fast": p.f.SavedFailFast} {
				ch <- prometheus.MustNewConstMetric(usageCallsDesc, prometheus.GaugeValue, float64(n), r.Upstream, p.name, kind)
			}
			if r.Currency != "" {
				for kind, v := range map[string]string{"spent": p.f.Spent, "saved": p.f.Saved} {
					f, _ := strconv.ParseFloat(v, 64) // for a graph; /admin/usage has the exact amount
					ch <- prometheus.MustNewConstMetric(usageMoneyDesc, prometheus.GaugeValue, f, r.Upstream, p.name, kind, r.Currency)
				}
			}
		}
		if r.Quota != nil {
			ch <- prometheus.MustNewConstMetric(usageQuotaDesc, prometheus.GaugeValue, r.Quota.Share, r.Upstream)
		}
	}
}

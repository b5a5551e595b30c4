package admin

import (
	"math"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tally is one upstream's counters as the metrics registry holds them:
// totals since the process started, read off the hot path by a Gather.
type tally struct {
	requests float64
	calls    float64            // attempts at the vendor, Seawall's own trouble aside
	answers  map[string]float64 // the vendor's answers by class: "2xx", "429", "5xx"…
	seawall  map[string]float64 // Seawall's own answers by status code
	refused  map[string]float64 // calls refused: "breaker", "limiter <reason>"
	lookups  float64            // cached-mode requests that could be served from the cache
	hits     float64            // of them, served from it (fresh or stale)
	stale    float64            // of them, served stale
	bounds   []float64          // request latency buckets' upper bounds, seconds
	buckets  []float64          // cumulative counts per bound
}

func newTally() *tally {
	return &tally{answers: map[string]float64{}, seawall: map[string]float64{}, refused: map[string]float64{}}
}

// tallies reads every upstream's tally from the registry.
func tallies(g prometheus.Gatherer) map[string]*tally {
	out := map[string]*tally{}
	fams, _ := g.Gather() // a partial result is still worth showing
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["upstream"] == "" {
				continue
			}
			t := out[l["upstream"]]
			if t == nil {
				t = newTally()
				out[l["upstream"]] = t
			}
			t.add(f.GetName(), l, m)
		}
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// add counts one series of the family name.
func (t *tally) add(name string, l map[string]string, m *dto.Metric) {
	v := m.GetCounter().GetValue()
	switch name {
	case "seawall_requests_total":
		t.requests += v
		if l["source"] == "upstream" {
			t.answers[codeClass(l["code"])] += v
		} else {
			t.seawall[l["code"]] += v
		}
	case "seawall_upstream_attempts_total":
		if l["result"] != "local" {
			t.calls += v
		}
	case "seawall_breaker_rejections_total":
		t.refused["breaker"] += v
	case "seawall_ratelimit_rejections_total":
		t.refused["limiter "+l["reason"]] += v
	case "seawall_cache_lookups_total":
		switch l["result"] {
		case "bypass":
		case "hit":
			t.lookups, t.hits = t.lookups+v, t.hits+v
		case "stale":
			t.lookups, t.hits, t.stale = t.lookups+v, t.hits+v, t.stale+v
		default: // miss, revalidated: the vendor was called
			t.lookups += v
		}
	case "seawall_request_duration_seconds":
		t.addHistogram(m.GetHistogram())
	}
}

// addHistogram sums a route's latency buckets into the upstream's.
func (t *tally) addHistogram(h *dto.Histogram) {
	bs := h.GetBucket()
	if t.bounds == nil {
		t.bounds, t.buckets = make([]float64, len(bs)), make([]float64, len(bs))
		for i, b := range bs {
			t.bounds[i] = b.GetUpperBound()
		}
	}
	for i, b := range bs {
		if i < len(t.buckets) {
			t.buckets[i] += float64(b.GetCumulativeCount())
		}
	}
}

// codeClass groups a status code as operators read them; 429 stays apart.
func codeClass(code string) string {
	if code == "429" || len(code) != 3 {
		return code
	}
	return code[:1] + "xx"
}

// since is what was counted between prev and t, over seconds. A counter
// that went down (its upstream was removed and added again) counts from 0.
func (t *tally) since(prev *tally, seconds float64) Traffic {
	if prev == nil {
		prev = newTally()
	}
	d := func(now, before float64) float64 {
		if now < before {
			return now
		}
		return now - before
	}
	perSecond := func(now, before map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range now {
			if n := d(v, before[k]); n > 0 {
				out[k] = round(n / seconds)
			}
		}
		return out
	}
	tr := Traffic{
		Rate:    round(d(t.requests, prev.requests) / seconds),
		Calls:   round(d(t.calls, prev.calls) / seconds),
		Answers: perSecond(t.answers, prev.answers), Seawall: perSecond(t.seawall, prev.seawall), Refused: perSecond(t.refused, prev.refused),
		Lookups: d(t.lookups, prev.lookups), Hits: d(t.hits, prev.hits), Stale: d(t.stale, prev.stale),
	}
	if t.bounds != nil {
		counts := make([]float64, len(t.buckets))
		for i := range counts {
			var before float64
			if i < len(prev.buckets) {
				before = prev.buckets[i]
			}
			counts[i] = d(t.buckets[i], before)
		}
		tr.P50 = round(1000 * quantile(0.5, t.bounds, counts))
		tr.P99 = round(1000 * quantile(0.99, t.bounds, counts))
	}
	return tr
}

// quantile estimates the q-quantile from cumulative bucket counts, as
// Prometheus's histogram_quantile does: linearly within the bucket that
// holds it, and the highest finite bound when it lies beyond. 0 when the
// buckets are empty.
func quantile(q float64, bounds, cumulative []float64) float64 {
	if len(cumulative) == 0 || cumulative[len(cumulative)-1] == 0 {
		return 0
	}
	total := cumulative[len(cumulative)-1]
	rank := q * total
	lower, below := 0.0, 0.0
	for i, c := range cumulative {
		if c >= rank && c > below {
			if math.IsInf(bounds[i], 1) {
				return lower
			}
			return lower + (bounds[i]-lower)*(rank-below)/(c-below)
		}
		lower, below = bounds[i], c
	}
	return lower // the rank lies past the last bucket: the histogram's +Inf count exceeds its buckets'
}

// round keeps three significant figures: enough to read, and a figure
// that jitters in its fourth does not resend a card.
func round(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	scale := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}

// Traffic is one upstream's requests over a sample period.
type Traffic struct {
	// Rate is the requests answered a second.
	Rate float64 `json:"rps"`
	// Calls are the attempts at the vendor a second, retries included:
	// what its rate limit counts.
	Calls float64 `json:"calls_ps"`
	// P50 and P99 are the requests' latency percentiles, in milliseconds.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	// Answers are the vendor's answers a second, by status class.
	Answers map[string]float64 `json:"answers"`
	// Seawall are Seawall's own answers a second, by status code.
	Seawall map[string]float64 `json:"seawall"`
	// Refused are calls a second that Seawall refused, by why.
	Refused map[string]float64 `json:"refused"`
	// Lookups, Hits and Stale count the cached-mode requests of the period
	// that the cache could serve, those it served, and those served stale.
	Lookups float64 `json:"cache_lookups"`
	Hits    float64 `json:"cache_hits"`
	Stale   float64 `json:"cache_stale"`
}

// failing is the share of the period's requests that did not get a
// vendor's 2xx–4xx answer (429 included as failing): the sort key that
// puts sick upstreams first.
func (tr Traffic) failing() float64 {
	var good, all float64
	for class, v := range tr.Answers {
		all += v
		if class != "429" && !strings.HasPrefix(class, "5") {
			good += v
		}
	}
	for _, v := range tr.Seawall {
		all += v
	}
	if all == 0 {
		return 0
	}
	return (all - good) / all
}

package incident

import (
	"github.com/prometheus/client_golang/prometheus"
)

// impactCounters are what an incident counts as its impact, each read
// from a metric, for one upstream and the labels given.
var impactCounters = []struct {
	key, metric string
	labels      map[string]string
}{
	{"failed_fast", "seawall_breaker_rejections_total", nil},
	{"rejected_by_limiter", "seawall_ratelimit_rejections_total", nil},
	{"served_stale", "seawall_cache_lookups_total", map[string]string{"result": "stale"}},
	{"jobs_delayed", "seawall_job_deliveries_total", map[string]string{"outcome": "waited"}},
	{"jobs_dead_lettered", "seawall_job_dead_letters_total", nil},
}

// GathererImpact reads an upstream's impact counters from the metrics
// registry, so that an incident's figures are the metrics' own: its
// impact is how much each grew while it was open. Every key is present,
// 0 when its metric is not registered.
func GathererImpact(g prometheus.Gatherer) func(upstream string) map[string]float64 {
	return func(upstream string) map[string]float64 {
		out := make(map[string]float64, len(impactCounters))
		for _, c := range impactCounters {
			out[c.key] = 0
		}
		families, _ := g.Gather() // a failing collector (a store down) leaves the others
		for _, f := range families {
			for _, c := range impactCounters {
				if f.GetName() != c.metric {
					continue
				}
			next:
				for _, m := range f.GetMetric() {
					want := map[string]string{"upstream": upstream}
					for k, v := range c.labels {
						want[k] = v
					}
					matched := 0
					for _, l := range m.GetLabel() {
						if v, ok := want[l.GetName()]; ok {
							if v != l.GetValue() {
								continue next
							}
							matched++
						}
					}
					if matched == len(want) && m.GetCounter() != nil {
						out[c.key] += m.GetCounter().GetValue()
					}
				}
			}
		}
		return out
	}
}

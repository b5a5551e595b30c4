// Package endpoint decides which endpoints of a third party to isolate:
// those worse than their peers while the upstream as a whole is not.
// The rule is written down in docs/endpoints.md; Judge implements it on
// figures alone, so that it can be tested as a function.
package endpoint

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Figures are one endpoint's recent record, from a window of real calls.
type Figures struct {
	ID       string
	Zone     string
	Calls    int
	Failures int           // connect errors, timeouts, 5xx and 429
	Latency  time.Duration // the window's latency quantile (p90)
	// Isolated says the endpoint is isolated now; it counts against
	// MaxIsolated and is judged no further until it is restored.
	Isolated bool
}

// FailureRate is Failures/Calls, 0 without calls.
func (f Figures) FailureRate() float64 {
	if f.Calls == 0 {
		return 0
	}
	return float64(f.Failures) / float64(f.Calls)
}

// String gives the figures for a log line.
func (f Figures) String() string {
	return fmt.Sprintf("%s zone=%s calls=%d failure_rate=%.3f p90=%s isolated=%t", f.ID, f.Zone, f.Calls, f.FailureRate(), f.Latency.Round(100*time.Microsecond), f.Isolated)
}

// Config holds the detector's margins. Zero fields take the defaults.
type Config struct {
	// MinCalls is the fewest calls in the window for an endpoint to be
	// judged. Default 20.
	MinCalls int
	// FailureMargin is how much worse, relatively, an outlier's failure
	// rate is than the baseline: above baseline×(1+FailureMargin).
	// Default 1 (more than twice the baseline).
	FailureMargin float64
	// FailureFloor is the least absolute gap to the baseline's failure
	// rate, so that 0.1% against 0.05% is no outlier. Default 0.05.
	FailureFloor float64
	// LatencyMargin is the same for the latency quantile. Default 1.
	LatencyMargin float64
	// LatencyFloor is the least absolute latency gap. Default 50ms.
	LatencyFloor time.Duration
	// MaxIsolated is the largest share of the pool isolated at once.
	// Default 0.5.
	MaxIsolated float64
	// HealthyShare is the share of the judged endpoints that must be
	// healthy (not outliers) for anything to be isolated: when more than
	// the rest degrade together, the problem is the upstream's, for the
	// breaker. The baseline is the best of that share. Default 1/3.
	HealthyShare float64
}

// defaultHealthyShare is HealthyShare when unset: not an operator's
// setting, so not in the config's table.
const defaultHealthyShare = 1.0 / 3

// withDefaults fills what the config does not set. Every other field is
// taken as given, zero included (PoolConfigFrom): the config's table is
// the one table of defaults.
func (c Config) withDefaults() Config {
	c.HealthyShare = cmp.Or(c.HealthyShare, defaultHealthyShare)
	return c
}

// Verdict is what Judge decides for one endpoint.
type Verdict struct {
	ID string
	// Outlier: worse than the baseline by the margins.
	Outlier bool
	// Isolate: isolate it now (an outlier, within MaxIsolated, while
	// enough of the pool is healthy).
	Isolate bool
	// Zone is set when every endpoint of the endpoint's zone is isolated
	// or to be isolated: the zone is isolated as a zone.
	Zone string
	// Reason gives the evidence, for the log and the event.
	Reason string
}

// Judge returns a verdict for each endpoint, in the order given.
//
// The baseline is, for failures and for latency separately, the value at
// the HealthyShare quantile from the best among the judged endpoints
// (those not isolated, with at least MinCalls): for three endpoints, the
// best one. An endpoint is an outlier when its failure rate or its
// latency exceeds the baseline by both the relative margin and the
// absolute floor. Outliers are isolated, the worst first, while the
// judged endpoints that are not outliers are at least HealthyShare of
// them, and as long as the isolated stay within MaxIsolated of the pool.
// Identical figures never make an outlier.
//
// recent, when given, holds the same endpoints' figures over the newest
// part of the window (in the same order). It guards the onset of a
// region-wide problem, which each endpoint's window shows at a slightly
// different moment: nothing is isolated while fewer than HealthyShare of
// the endpoints with recent calls (at least MinCalls/4 of them) are
// healthy by recent figures, judged against the window's baseline.
func Judge(cfg Config, fs, recent []Figures) []Verdict {
	c := cfg.withDefaults()
	out := make([]Verdict, len(fs))
	var judged []int
	isolated := 0
	for i, f := range fs {
		out[i].ID = f.ID
		switch {
		case f.Isolated:
			isolated++
		case f.Calls >= c.MinCalls:
			judged = append(judged, i)
		}
	}
	if len(judged) < 2 {
		return out // no peers to compare with
	}
	k := max(1, int(math.Ceil(c.HealthyShare*float64(len(judged))))) - 1
	rates := make([]float64, len(judged))
	lats := make([]time.Duration, len(judged))
	for j, i := range judged {
		rates[j], lats[j] = fs[i].FailureRate(), fs[i].Latency
	}
	slices.Sort(rates)
	slices.Sort(lats)
	baseRate, baseLat := rates[k], lats[k]

	type outlier struct {
		i        int
		severity float64
	}
	var outliers []outlier
	for _, i := range judged {
		f := fs[i]
		if sev, why := c.outlier(f, baseRate, baseLat); sev > 0 {
			out[i].Outlier = true
			out[i].Reason = fmt.Sprintf("%s, over %d calls", why, f.Calls)
			outliers = append(outliers, outlier{i, sev})
		}
	}
	healthy := len(judged) - len(outliers)
	held := ""
	switch {
	case float64(healthy) < c.HealthyShare*float64(len(judged)):
		held = "; not isolated: most of the upstream is degraded too (the breaker's matter)"
	case len(outliers) > 0 && c.degradingTogether(recent, baseRate, baseLat):
		held = "; not isolated: most of the upstream's newest calls are degraded too (a region-wide onset)"
	}
	if held != "" {
		for _, o := range outliers {
			out[o.i].Reason += held
		}
		return out
	}
	room := int(math.Floor(c.MaxIsolated*float64(len(fs)))) - isolated
	slices.SortStableFunc(outliers, func(a, b outlier) int { return cmp.Compare(b.severity, a.severity) })
	for n, o := range outliers {
		if n < room {
			out[o.i].Isolate = true
		} else {
			out[o.i].Reason += fmt.Sprintf("; not isolated: max_isolated (%.0f%% of %d) reached", 100*c.MaxIsolated, len(fs))
		}
	}
	markZones(fs, out)
	return out
}

// outlier says how far f is worse than the baseline (0: not an outlier)
// and why: past both the relative margin and the absolute floor, for
// failure rate or latency.
func (c Config) outlier(f Figures, baseRate float64, baseLat time.Duration) (severity float64, why string) {
	rate := f.FailureRate()
	var reasons []string
	if rate > baseRate*(1+c.FailureMargin) && rate-baseRate >= c.FailureFloor {
		severity += (rate - baseRate) / max(baseRate, c.FailureFloor)
		reasons = append(reasons, fmt.Sprintf("failure rate %.1f%% against the peers' %.1f%%", 100*rate, 100*baseRate))
	}
	if float64(f.Latency) > float64(baseLat)*(1+c.LatencyMargin) && f.Latency-baseLat >= c.LatencyFloor {
		severity += float64(f.Latency-baseLat) / float64(max(baseLat, c.LatencyFloor))
		reasons = append(reasons, fmt.Sprintf("p90 latency %s against the peers' %s", f.Latency.Round(time.Millisecond), baseLat.Round(time.Millisecond)))
	}
	if len(reasons) == 0 {
		return 0, ""
	}
	return severity, joinAnd(reasons)
}

// degradingTogether reports whether fewer than HealthyShare of the
// endpoints with enough recent calls are healthy by their recent figures
// against the window's baseline.
func (c Config) degradingTogether(recent []Figures, baseRate float64, baseLat time.Duration) bool {
	enough := max(c.MinCalls/4, 3)
	seen, sick := 0, 0
	for _, f := range recent {
		if f.Isolated || f.Calls < enough {
			continue
		}
		seen++
		if sev, _ := c.outlier(f, baseRate, baseLat); sev > 0 {
			sick++
		}
	}
	return seen >= 2 && float64(seen-sick) < c.HealthyShare*float64(seen)
}

// markZones names the zone on the verdicts of a zone whose every endpoint
// is isolated or to be isolated (a zone of more than one endpoint).
func markZones(fs []Figures, out []Verdict) {
	members, down := map[string]int{}, map[string]int{}
	for i, f := range fs {
		if f.Zone == "" {
			continue
		}
		members[f.Zone]++
		if f.Isolated || out[i].Isolate {
			down[f.Zone]++
		}
	}
	for i, f := range fs {
		if f.Zone != "" && out[i].Isolate && members[f.Zone] > 1 && down[f.Zone] == members[f.Zone] {
			out[i].Zone = f.Zone
		}
	}
}

func joinAnd(s []string) string {
	if len(s) == 2 {
		return s[0] + " and " + s[1]
	}
	return s[0]
}

package endpoint

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func healthy(id, zone string) Figures {
	return Figures{ID: id, Zone: zone, Calls: 200, Failures: 1, Latency: 20 * time.Millisecond}
}

func isolatedIDs(vs []Verdict) string {
	var ids []string
	for _, v := range vs {
		if v.Isolate {
			ids = append(ids, v.ID)
		}
	}
	return strings.Join(ids, ",")
}

// The onset of a region-wide slowdown reaches the endpoints' windows at
// slightly different moments: one already looks slow over its window
// while the others do not yet. Their newest calls say the whole upstream
// is slowing, and nothing is isolated; a lone brownout passes the check.
func TestJudgeHoldsBackOnARegionWideOnset(t *testing.T) {
	window := []Figures{healthy("a", "a"), healthy("b", "b"), {ID: "c", Zone: "c", Calls: 200, Latency: 320 * time.Millisecond}}
	slowNow := func(id string) Figures { return Figures{ID: id, Calls: 20, Latency: 320 * time.Millisecond} }
	fastNow := func(id string) Figures { return Figures{ID: id, Calls: 20, Latency: 20 * time.Millisecond} }

	vs := Judge(defaults().Detector, window, []Figures{slowNow("a"), slowNow("b"), slowNow("c")})
	if got := isolatedIDs(vs); got != "" {
		t.Errorf("with every endpoint's newest calls slow, isolated %q", got)
	}
	if !strings.Contains(vs[2].Reason, "region-wide onset") {
		t.Errorf("the held-back outlier's reason %q does not say why", vs[2].Reason)
	}
	if got := isolatedIDs(Judge(defaults().Detector, window, []Figures{fastNow("a"), fastNow("b"), slowNow("c")})); got != "c" {
		t.Errorf("a lone brownout with its peers' newest calls fast: isolated %q, want c", got)
	}
	few := []Figures{{ID: "a", Calls: 2, Latency: time.Second}, {ID: "b", Calls: 2, Latency: time.Second}, slowNow("c")}
	if got := isolatedIDs(Judge(defaults().Detector, window, few)); got != "c" {
		t.Errorf("peers with too few recent calls to judge held the isolation back: isolated %q", got)
	}
}

// The acceptance scenarios of endpoint health, on figures alone.
func TestJudge(t *testing.T) {
	slow := func(f Figures) Figures { f.Latency += 300 * time.Millisecond; return f }
	failing := func(f Figures) Figures { f.Failures = f.Calls * 30 / 100; return f }
	for _, tc := range []struct {
		name string
		cfg  Config
		fs   []Figures
		want string // isolated ids
		zone string
	}{
		{"all healthy", defaults().Detector, []Figures{healthy("a", "a"), healthy("b", "b"), healthy("c", "c")}, "", ""},
		{"latency brownout", defaults().Detector, []Figures{healthy("a", "a"), healthy("b", "b"), slow(healthy("c", "c"))}, "c", ""},
		{"error brownout", defaults().Detector, []Figures{healthy("a", "a"), failing(healthy("b", "b")), healthy("c", "c")}, "b", ""},
		{"region-wide latency", defaults().Detector, []Figures{slow(healthy("a", "a")), slow(healthy("b", "b")), slow(healthy("c", "c"))}, "", ""},
		{"region-wide errors", defaults().Detector, []Figures{failing(healthy("a", "a")), failing(healthy("b", "b")), failing(healthy("c", "c"))}, "", ""},
		{"two sick, max 34%", detector(func(c *Config) { c.MaxIsolated = 0.34 }), []Figures{healthy("a", "a"), slow(healthy("b", "b")), failing(slow(healthy("c", "c")))}, "c", ""},
		{"zone", defaults().Detector, []Figures{slow(healthy("a1", "a")), slow(healthy("a2", "a")), healthy("b", "b"), healthy("c", "c")}, "a1,a2", "a"},
		{"too few calls", defaults().Detector, []Figures{healthy("a", "a"), healthy("b", "b"), {ID: "c", Calls: 5, Failures: 5, Latency: time.Second}}, "", ""},
		{"tiny rates are no outlier", defaults().Detector, []Figures{{ID: "a", Calls: 10000, Failures: 5, Latency: 20 * time.Millisecond}, {ID: "b", Calls: 10000, Failures: 10, Latency: 20 * time.Millisecond}, {ID: "c", Calls: 10000, Failures: 5, Latency: 20 * time.Millisecond}}, "", ""},
		{"small latency gap is no outlier", defaults().Detector, []Figures{healthy("a", "a"), healthy("b", "b"), {ID: "c", Calls: 200, Latency: 60 * time.Millisecond}}, "", ""},
		{"one already isolated fills the room", detector(func(c *Config) { c.MaxIsolated = 0.34 }), []Figures{{ID: "a", Isolated: true}, healthy("b", "b"), slow(healthy("c", "c")), healthy("d", "d")}, "", ""},
	} {
		vs := Judge(tc.cfg, tc.fs, nil)
		if got := isolatedIDs(vs); got != tc.want {
			t.Errorf("%s: isolated %q, want %q (%+v)", tc.name, got, tc.want, vs)
		}
		for _, v := range vs {
			if v.Isolate && v.Zone != tc.zone {
				t.Errorf("%s: %s isolated with zone %q, want %q", tc.name, v.ID, v.Zone, tc.zone)
			}
			if v.Isolate && v.Reason == "" {
				t.Errorf("%s: %s isolated without evidence", tc.name, v.ID)
			}
		}
	}
}

// Properties over random figures: never more isolated than MaxIsolated
// allows; nothing isolated when every endpoint has the same figures;
// only judged outliers are isolated.
func TestJudgeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := 1 + rng.IntN(12)
		cfg := detector(func(c *Config) { c.MaxIsolated, c.MinCalls = rng.Float64(), 1+rng.IntN(50) })
		fs := make([]Figures, n)
		var recent []Figures // half the time, random newest figures too
		if rng.IntN(2) == 0 {
			recent = make([]Figures, n)
			for i := range recent {
				calls := rng.IntN(60)
				recent[i] = Figures{Calls: calls, Failures: rng.IntN(calls + 1), Latency: time.Duration(rng.IntN(2000)) * time.Millisecond}
			}
		}
		already := 0
		for i := range fs {
			calls := rng.IntN(500)
			fs[i] = Figures{ID: string(rune('a' + i)), Zone: string(rune('a' + rng.IntN(3))), Calls: calls,
				Failures: rng.IntN(calls + 1), Latency: time.Duration(rng.IntN(2000)) * time.Millisecond, Isolated: rng.IntN(8) == 0}
			if fs[i].Isolated {
				already++
			}
		}
		vs := Judge(cfg, fs, recent)
		isolating := 0
		for i, v := range vs {
			if v.Isolate {
				isolating++
				if !v.Outlier || fs[i].Isolated || fs[i].Calls < cfg.MinCalls {
					t.Fatalf("isolated %s, not a judged outlier: %+v %+v", v.ID, fs[i], v)
				}
			}
		}
		if limit := int(math.Floor(cfg.MaxIsolated * float64(n))); isolating > 0 && already+isolating > limit {
			t.Fatalf("%d already + %d new isolated of %d, max_isolated %.2f allows %d", already, isolating, n, cfg.MaxIsolated, limit)
		}
		same := Figures{Calls: 1 + rng.IntN(500), Latency: time.Duration(rng.IntN(2000)) * time.Millisecond}
		same.Failures = rng.IntN(same.Calls + 1)
		alike := make([]Figures, n)
		for i := range alike {
			alike[i] = same
			alike[i].ID = string(rune('a' + i))
		}
		for _, v := range Judge(cfg, alike, recent) {
			if v.Isolate || v.Outlier {
				t.Fatalf("identical figures %+v made %s an outlier", same, v.ID)
			}
		}
	}
}

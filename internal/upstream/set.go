package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/usage"
)

// Set is what the app-facing handler, the job workers and the admin API
// share, built first: the upstreams in force, by name, and the limits in
// force, both swapped whole by Apply; the response cache; the usage meters.
type Set struct {
	cur    atomic.Pointer[map[string]*Upstream]
	limits atomic.Pointer[Limits]
	cache  cache.Store
	m      *Metrics
	// cluster is the link to the other replicas; nil: none.
	cluster *cluster.Cluster
	log     *slog.Logger
	events  incident.Publisher
	g       *routine.Group
	// Usage holds the upstreams' meters, which outlive a reload.
	Usage *usage.Book
	// shiftSeq numbers the shifts this replica makes, with a cluster.
	shiftSeq atomic.Int64
}

// Parts are what a Set is built from, made before it.
type Parts struct {
	Metrics *Metrics
	Log     *slog.Logger
	// Events receives the upstreams' incident events (nil: none).
	Events incident.Publisher
	// Routines starts their goroutines (nil: bare goroutines, for tests).
	Routines *routine.Group
	// Cache is the response cache (nil: an in-memory one of the config's
	// cache.max_bytes).
	Cache cache.Store
	// Cluster shares the global upstreams' pace and pauses with the other
	// replicas; nil without a redis block.
	Cluster *cluster.Cluster
}

// NewSet returns a set holding cfg's upstreams and limits, which a later
// Apply replaces.
func NewSet(cfg *config.Config, p Parts) *Set {
	m, log, events, g, responses := p.Metrics, p.Log, p.Events, p.Routines, p.Cache
	if events == nil {
		events = incident.Discard
	}
	if responses == nil {
		mem := cache.NewMemory(int64(cfg.Cache.MaxBytes), int64(cfg.Cache.MaxEntry), m.CacheEvictions.Inc)
		responses = mem
		if cfg.Cache.Shared && p.Cluster != nil {
			// A level in Redis behind this replica's memory: the replicas'
			// caches are one (docs/distributed.md, "The cache").
			t := cache.NewTiered(mem, p.Cluster.Cache(int64(cfg.Cache.SharedMaxBytes)), log)
			p.Cluster.OnCachePurge(t.Forget)
			watchSharedCache(m.Registry, t)
			responses = t
		}
	}
	m.WatchCacheBytes(responses.Bytes)
	s := &Set{m: m, log: log, events: events, g: g, cache: responses, cluster: p.Cluster, Usage: usage.NewBook(events)}
	if s.cluster != nil {
		s.cluster.OnShifts(s.syncShifts)
		s.cluster.AnnounceIsolated(s.isolatedEndpoints)
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "seawall", Name: "zone_ready",
			Help: "0 while this replica's zone sees a global upstream failing that another zone sees healthy (/readyz answers 503), else 1."},
			func() float64 {
				if ok, _ := s.ZoneHealth(); ok {
					return 1
				}
				return 0
			}))
	}
	empty := map[string]*Upstream{}
	s.cur.Store(&empty)
	m.Registry.MustRegister(limiterCollector{status: s.limiterStatus}, endpointCollector{reports: s.endpointReports}, usageCollector{reports: s.UsageReports})
	s.Apply(cfg)
	return s
}

// Events is where the upstreams send their incident events.
func (s *Set) Events() incident.Publisher { return s.events }

// Metrics are the metrics the upstreams count in.
func (s *Set) Metrics() *Metrics { return s.m }

// Logger is the upstreams' logger.
func (s *Set) Logger() *slog.Logger { return s.log }

// Routines is the group the upstreams start their goroutines in.
func (s *Set) Routines() *routine.Group { return s.g }

// Get returns the named upstream, or nil.
func (s *Set) Get(name string) *Upstream { return (*s.cur.Load())[name] }

// All returns the upstreams in force; the map must not be changed.
func (s *Set) All() map[string]*Upstream { return *s.cur.Load() }

// Applied says what Apply did to the upstreams, by name.
type Applied struct {
	Added   []string `json:"added,omitempty"`
	Changed []string `json:"changed,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Kept    []string `json:"kept,omitempty"`
}

// Apply puts a validated config's upstreams and limits in force, at once
// for every call that starts after it. An upstream whose settings (and Seawall's
// zone) are unchanged is kept whole: its limiter, breaker, pause, learned
// rate and endpoint health go on as they were. A changed upstream starts
// afresh, keeping its shifts; calls already under way finish with the
// upstream they started with.
func (s *Set) Apply(cfg *config.Config) Applied {
	old := s.All()
	next := make(map[string]*Upstream, len(cfg.Upstreams))
	var a Applied
	var retired []*Upstream
	for name, uc := range cfg.Upstreams {
		prev := old[name]
		switch {
		case prev == nil:
			a.Added = append(a.Added, name)
		case reflect.DeepEqual(prev.Cfg, uc) && prev.Zone == cfg.Zone:
			next[name] = prev
			a.Kept = append(a.Kept, name)
			continue
		default:
			a.Changed = append(a.Changed, name)
			retired = append(retired, prev)
		}
		var shared *cluster.Upstream
		meter := s.Usage.Meter(name)
		if s.cluster != nil && cfg.Global(uc) {
			shared = s.cluster.Upstream(name)
			meter.Share(shared, s.cluster.ID())
		} else {
			meter.Share(nil, "")
		}
		u := New(name, cfg.Zone, uc, s.m, s.log, s.events, meter, s.g, shared, cfg.Redis)
		if prev != nil && prev.eps.pool != nil && u.eps.pool != nil {
			u.eps.pool.Adopt(time.Now(), prev.eps.pool)
		}
		next[name] = u
	}
	for name, u := range old {
		if next[name] == nil {
			a.Removed = append(a.Removed, name)
			retired = append(retired, u)
		}
	}
	s.limits.Store(limitsOf(cfg))
	s.cur.Store(&next)
	for _, u := range retired {
		s.retire(u, next[u.Name])
		u.Close()
		u.CloseIdleConnections()
	}
	for _, l := range [][]string{a.Added, a.Changed, a.Removed, a.Kept} {
		slices.Sort(l)
	}
	return a
}

// SameEndpoints reports whether two upstreams call the same addresses,
// in whatever order.
func SameEndpoints(a, b *Upstream) bool {
	urls := func(c *config.Upstream) []string {
		out := make([]string, len(c.Endpoints))
		for i, e := range c.Endpoints {
			out[i] = e.URL
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(urls(a.Cfg), urls(b.Cfg))
}

// UsageReports describes the configured upstreams' usage.
func (s *Set) UsageReports() []usage.Report {
	names := make([]string, 0, len(s.All()))
	for name := range s.All() {
		names = append(names, name)
	}
	return s.Usage.Reports(names)
}

// Close stops the upstreams' health tickers, once no call is made.
func (s *Set) Close() {
	for _, u := range s.All() {
		u.Close()
	}
}

// Status is an upstream's live state, for the admin API.
type Status struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Breaker string `json:"breaker"`
	// BreakerSince is when the breaker entered its state; absent while
	// closed since Seawall started.
	BreakerSince *time.Time       `json:"breaker_since,omitempty"`
	PausedFor    float64          `json:"paused_for_seconds"`
	RateLimitMax int              `json:"rate_limit_quota,omitempty"`
	RateLimit    ratelimit.Status `json:"rate_limit"`
	// Zone is Seawall's own zone, which calls prefer.
	Zone      string            `json:"zone,omitempty"`
	Endpoints []endpoint.Report `json:"endpoints"`
	Shifts    []endpoint.Shift  `json:"shifts"`
}

// Status reports every upstream's live state, sorted by name.
func (s *Set) Status() []Status {
	ups := s.All()
	out := make([]Status, 0, len(ups))
	for _, u := range ups {
		st := Status{Name: u.Name, URL: u.Base.Redacted(), Breaker: "disabled", RateLimitMax: u.Policy.Quota}
		if u.Breaker != nil {
			state, since := u.Breaker.StateSince()
			st.Breaker = state.String()
			if !since.IsZero() {
				st.BreakerSince = &since
			}
		}
		st.RateLimit = u.Limiter.Status()
		st.PausedFor = st.RateLimit.PausedFor.Seconds()
		st.Zone = u.Zone
		st.Endpoints, st.Shifts = u.eps.reports(time.Now())
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// limiterStatus is every upstream's limiter state, for the metrics.
func (s *Set) limiterStatus() map[string]ratelimit.Status {
	ups := s.All()
	out := make(map[string]ratelimit.Status, len(ups))
	for name, u := range ups {
		out[name] = u.Limiter.Status()
	}
	return out
}

// endpointReports is every upstream's endpoints, for the metrics.
func (s *Set) endpointReports() map[string][]endpoint.Report {
	ups := s.All()
	out := make(map[string][]endpoint.Report, len(ups))
	for name, u := range ups {
		out[name], _ = u.eps.reports(time.Now())
	}
	return out
}

// isolatedEndpoints are the endpoints this replica's calls have isolated
// (or are probing), by upstream; nil when none.
func (s *Set) isolatedEndpoints() map[string][]string {
	var out map[string][]string
	for name, reports := range s.endpointReports() {
		for _, r := range reports {
			if r.State != endpoint.Healthy {
				if out == nil {
					out = map[string][]string{}
				}
				out[name] = append(out[name], r.URL)
			}
		}
	}
	return out
}

// ZoneHealth says whether this replica's zone is ready: not when, for a
// global upstream, its zone's replicas see it failing while another
// zone's see it healthy (and no operator said the zone is ready). why
// gives the evidence, one line per upstream.
func (s *Set) ZoneHealth() (ready bool, why []string) {
	for name, u := range s.All() {
		if u.sharedBreaker == nil {
			continue
		}
		if v := u.sharedBreaker.zoneVerdict(); v.Sick && !v.Overridden {
			why = append(why, v.Evidence(name))
		}
	}
	slices.Sort(why)
	return len(why) == 0, why
}

// ShiftView is a shift in force on one upstream.
type ShiftView struct {
	Upstream string `json:"upstream"`
	endpoint.Shift
}

// ErrUnknownShift is returned for a shift id not in force.
var ErrUnknownShift = errors.New("no such shift")

// AddShift moves an upstream's traffic away from a zone or an endpoint,
// at once, for d (0: an hour).
func (s *Set) AddShift(upstream, zone, url string, d time.Duration) (ShiftView, error) {
	u := s.Get(upstream)
	switch {
	case u == nil:
		return ShiftView{}, fmt.Errorf("%w: no upstream %q", endpoint.ErrShift, upstream)
	case u.eps.pool == nil:
		return ShiftView{}, fmt.Errorf("%w: upstream %s has one endpoint, and a shift would leave it none", endpoint.ErrShift, upstream)
	}
	if s.cluster == nil {
		sh, err := u.eps.pool.AddShift(time.Now(), zone, url, d)
		return ShiftView{upstream, sh}, err
	}
	// Named after the replica, so that two replicas' shifts never share an
	// id, and kept in Redis for every replica.
	id := fmt.Sprintf("%s-%s-%d", upstream, s.cluster.ID()[:4], s.shiftSeq.Add(1))
	sh, err := u.eps.pool.AddShiftID(time.Now(), id, zone, url, d)
	if err != nil {
		return ShiftView{upstream, sh}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.cluster.PutShift(ctx, cluster.Shifted{Upstream: upstream, Shift: sh}); err != nil {
		s.log.Warn("the shift is in force on this replica only until Redis answers again; then it is shared", "shift", id, "error", err.Error())
	}
	return ShiftView{upstream, sh}, nil
}

// RemoveShift ends a shift at once, on every replica when it is shared.
func (s *Set) RemoveShift(id string) error {
	for _, u := range s.All() {
		if u.eps.pool != nil && u.eps.pool.RemoveShift(time.Now(), id) == nil {
			if s.cluster != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if err := s.cluster.DeleteShift(ctx, id); err != nil {
					return fmt.Errorf("removed on this replica, but Redis did not answer: the others keep the shift until it answers again: %w", err)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %q is not in force (it may have expired)", ErrUnknownShift, id)
}

// syncShifts puts in force, on each upstream, the shifts every replica
// has, ends those removed, and shares those Redis does not have: made
// while it did not answer, or lost when it restarted empty.
func (s *Set) syncShifts(shared []cluster.Shifted, removed map[string]bool) {
	by := map[string][]endpoint.Shift{}
	for _, sh := range shared {
		by[sh.Upstream] = append(by[sh.Upstream], sh.Shift)
	}
	now := time.Now()
	for _, u := range s.All() {
		if u.eps.pool == nil {
			continue
		}
		for _, sh := range u.eps.pool.SyncShifts(now, by[u.Name], removed) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if s.cluster.PutShift(ctx, cluster.Shifted{Upstream: u.Name, Shift: sh}) == nil {
				s.log.Info("a shift Redis did not have is shared with every replica", "shift", sh.ID)
			}
			cancel()
		}
	}
}

// Shifts lists the shifts in force, by upstream.
func (s *Set) Shifts() []ShiftView {
	out := []ShiftView{}
	for _, u := range s.All() {
		if u.eps.pool == nil {
			continue
		}
		for _, sh := range u.eps.pool.Shifts(time.Now()) {
			out = append(out, ShiftView{u.Name, sh})
		}
	}
	slices.SortFunc(out, func(a, b ShiftView) int { return a.Until.Compare(b.Until) })
	return out
}

var _ prometheus.Collector = limiterCollector{}

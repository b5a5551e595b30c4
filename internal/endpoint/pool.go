package endpoint

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// State is an endpoint's place in the isolation lifecycle.
type State string

// The states: healthy; isolated (no calls) until its time is up; probing
// (a small share of calls) until the probes say healthy or sick again.
const (
	Healthy  State = "healthy"
	Isolated State = "isolated"
	Probing  State = "probing"
)

// Event is an isolation, a restore or a shift, with its evidence, for
// the log and for the incident signals that consume them.
type Event struct {
	Time     time.Time
	Upstream string
	Kind     string // isolated, restored, shift-added, shift-removed, shift-expired
	Endpoint string // empty for a zone shift
	Zone     string // set for a zone isolated as a zone, and zone shifts
	Reason   string
	Figures  *Figures  // the endpoint's, for isolations and restores
	Peers    []Figures // the others', when they were judged
}

// Publisher receives events. It must not block.
type Publisher interface{ Publish(Event) }

// LogPublisher writes events to a logger.
type LogPublisher struct{ Log *slog.Logger }

// Publish implements Publisher.
func (p LogPublisher) Publish(e Event) {
	attrs := []any{"upstream", e.Upstream}
	if e.Endpoint != "" {
		attrs = append(attrs, "endpoint", e.Endpoint)
	}
	if e.Zone != "" {
		attrs = append(attrs, "zone", e.Zone)
	}
	attrs = append(attrs, "reason", e.Reason)
	if e.Figures != nil {
		attrs = append(attrs, "calls", e.Figures.Calls, "failure_rate", e.Figures.FailureRate(), "p90_ms", e.Figures.Latency.Milliseconds())
	}
	if len(e.Peers) > 0 {
		peers := make([]string, len(e.Peers))
		for i, f := range e.Peers {
			peers[i] = f.String()
		}
		attrs = append(attrs, "peers", peers)
	}
	p.Log.Warn("endpoint "+e.Kind, attrs...)
}

// PoolConfig tunes isolation. Zero fields take the defaults.
type PoolConfig struct {
	Detector Config
	// Window is how far back the detector looks; Run judges every
	// Window/6. Default 10s.
	Window time.Duration
	// BaseIsolation is the first isolation's length; each repeat doubles
	// it, up to MaxIsolation.
	BaseIsolation, MaxIsolation time.Duration
	// ProbeShare is the share of calls a probing endpoint gets.
	ProbeShare float64
	// ProbeCalls is how many probe calls decide a restore.
	ProbeCalls int
}

func (c PoolConfig) withDefaults() PoolConfig {
	c.Detector = c.Detector.withDefaults()
	return c
}

// PoolConfigFrom is the pool's configuration from an upstream's validated
// health keys, every one as written or defaulted by the config: an
// explicit zero stays zero.
func PoolConfigFrom(h config.Health) PoolConfig {
	return PoolConfig{
		Detector: Config{
			MinCalls:      h.MinCalls,
			FailureMargin: h.FailureMargin.Fraction(),
			FailureFloor:  h.FailureFloor.Fraction(),
			LatencyMargin: h.LatencyMargin.Fraction(),
			LatencyFloor:  h.LatencyFloor.D(),
			MaxIsolated:   h.MaxIsolated.Fraction(),
		},
		Window:        h.Window.D(),
		BaseIsolation: h.BaseIsolation.D(),
		MaxIsolation:  h.MaxIsolation.D(),
		ProbeShare:    h.ProbeShare.Fraction(),
		ProbeCalls:    h.ProbeCalls,
	}
}

// health is an endpoint's lifecycle.
type health struct {
	state      State
	until      time.Time // isolated until
	isolations int       // in a row, for the growing isolation time
	total      int       // isolations ever
	reason     string    // why it was last isolated
	probes     []probe
}

type probe struct {
	took   time.Duration
	failed bool
}

// Pool is an upstream's endpoints with their health.
type Pool struct {
	upstream string
	local    string
	cfg      PoolConfig
	pub      Publisher
	eps      []*Endpoint

	mu        sync.Mutex
	h         map[*Endpoint]*health
	rng       *rand.Rand
	shifts    []Shift
	nextShift int
}

// NewPool returns the pool of an upstream; local is Seawall's own zone.
func NewPool(upstream, local string, eps []*Endpoint, cfg PoolConfig, pub Publisher) *Pool {
	p := &Pool{upstream: upstream, local: local, cfg: cfg.withDefaults(), pub: pub, eps: eps,
		h: map[*Endpoint]*health{}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	for _, e := range eps {
		p.h[e] = &health{state: Healthy}
	}
	return p
}

// Pick chooses the endpoint for an attempt at now, avoiding the one the
// last attempt used when another is available. Isolated and shifted
// endpoints get no calls, probing ones a ProbeShare of them, while any
// endpoint is healthy and not shifted away; when none is, isolation
// gives way (it never fails a call by itself), and then shifts do.
func (p *Pool) Pick(now time.Time, avoid *Endpoint) *Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireShifts(now)
	if len(p.eps) == 1 {
		return p.eps[0]
	}
	probeNow := p.rng.Float64() < p.cfg.ProbeShare
	for _, e := range p.eps {
		if h := p.h[e]; probeNow && h.state == Probing && e != avoid && !p.shifted(e) {
			return e
		}
	}
	if e := Choose(p.eps, func(e *Endpoint) bool { return p.h[e].state == Healthy && !p.shifted(e) }, p.local, avoid, now, p.rng); e != nil {
		return e
	}
	if e := Choose(p.eps, func(e *Endpoint) bool { return !p.shifted(e) }, p.local, avoid, now, p.rng); e != nil {
		return e
	}
	return Choose(p.eps, func(*Endpoint) bool { return true }, p.local, avoid, now, p.rng)
}

// Release ends a call on e that says nothing of e's health (the client
// went away, Seawall refused to send it).
func (p *Pool) Release(e *Endpoint) { e.outstanding.Add(-1) }

// Done records the end of a call made on e.
func (p *Pool) Done(e *Endpoint, now time.Time, took time.Duration, failed bool) {
	e.Done(now, took, failed)
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.h[e]; h.state == Probing {
		h.probes = append(h.probes, probe{took, failed})
	}
}

// State reports an endpoint's state.
func (p *Pool) State(e *Endpoint) State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h[e].state
}

// Tick judges the pool and moves endpoints along the lifecycle; call it
// on a ticker, every window slice, after rotating the endpoints' Stats.
func (p *Pool) Tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireShifts(now)
	figs := make([]Figures, len(p.eps))
	recent := make([]Figures, len(p.eps))
	for i, e := range p.eps {
		figs[i] = e.Stats.Figures()
		recent[i] = e.Stats.Recent(recentSlices)
		figs[i].Isolated = p.h[e].state != Healthy
		recent[i].Isolated = figs[i].Isolated
	}
	for i, v := range Judge(p.cfg.Detector, figs, recent) {
		if !v.Isolate {
			continue
		}
		p.isolate(p.eps[i], now, v.Zone, v.Reason, figs, i)
	}
	base := baseline(figs)
	for i, e := range p.eps {
		h := p.h[e]
		switch {
		case h.state == Isolated && !now.Before(h.until):
			h.state, h.probes = Probing, nil
		case h.state == Probing && len(h.probes) >= p.cfg.ProbeCalls:
			if why := p.sickProbes(h.probes, base); why != "" {
				p.isolate(e, now, "", "probes: "+why, figs, i)
				continue
			}
			h.state, h.isolations, h.probes = Healthy, 0, nil
			f := figs[i]
			p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "restored", Endpoint: e.URL.Redacted(), Zone: e.Zone,
				Reason: fmt.Sprintf("%d probe calls healthy", p.cfg.ProbeCalls), Figures: &f})
		}
	}
}

// Run rotates the endpoints' windows and judges the pool every Window/6
// until stop is closed. An upstream of one endpoint needs no Run.
func (p *Pool) Run(stop <-chan struct{}) {
	t := time.NewTicker(p.cfg.Window / statBuckets)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, e := range p.eps {
				e.Stats.Rotate()
			}
			p.Tick(now)
		}
	}
}

// Report is what the operator sees of one endpoint.
type Report struct {
	URL         string        `json:"url"`
	Zone        string        `json:"zone,omitempty"`
	Weight      int           `json:"weight"`
	State       State         `json:"state"`
	Shifted     bool          `json:"shifted,omitempty"`
	Calls       int           `json:"calls"`        // in the window
	FailureRate float64       `json:"failure_rate"` // in the window
	P90         time.Duration `json:"-"`
	P90Ms       float64       `json:"p90_ms"`
	Share       float64       `json:"share"` // of the upstream's calls in the window
	Outstanding int64         `json:"outstanding"`
	Isolations  int           `json:"isolations"`
	Until       *time.Time    `json:"isolated_until,omitempty"`
	Reason      string        `json:"reason,omitempty"` // why it is (or was last) isolated
}

// Reports describes every endpoint at now, in configured order.
func (p *Pool) Reports(now time.Time) []Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireShifts(now)
	out := make([]Report, len(p.eps))
	total := 0
	for i, e := range p.eps {
		f := e.Stats.Figures()
		h := p.h[e]
		out[i] = Report{URL: e.URL.Redacted(), Zone: e.Zone, Weight: e.Weight, State: h.state, Shifted: p.shifted(e),
			Calls: f.Calls, FailureRate: f.FailureRate(), P90: f.Latency, P90Ms: float64(f.Latency.Microseconds()) / 1000,
			Outstanding: e.outstanding.Load(), Isolations: h.total, Reason: h.reason}
		if h.state == Isolated {
			until := h.until
			out[i].Until = &until
		}
		total += f.Calls
	}
	for i := range out {
		if total > 0 {
			out[i].Share = float64(out[i].Calls) / float64(total)
		}
	}
	return out
}

// isolate takes e out of rotation for its next isolation time.
func (p *Pool) isolate(e *Endpoint, now time.Time, zone, reason string, figs []Figures, i int) {
	h := p.h[e]
	d := p.cfg.BaseIsolation << min(h.isolations, 16)
	d = min(d, p.cfg.MaxIsolation)
	h.state, h.until, h.probes = Isolated, now.Add(d), nil
	h.isolations++
	h.total++
	if zone != "" {
		reason = "zone " + zone + " isolated: " + reason
	}
	h.reason = reason
	f := figs[i]
	peers := append(append([]Figures{}, figs[:i]...), figs[i+1:]...)
	p.pub.Publish(Event{Time: now, Upstream: p.upstream, Kind: "isolated", Endpoint: e.URL.Redacted(), Zone: zone,
		Reason: fmt.Sprintf("%s; isolated for %s", reason, d), Figures: &f, Peers: peers})
}

// sickProbes says why the probes show the endpoint still sick, or "".
func (p *Pool) sickProbes(probes []probe, base Figures) string {
	c := p.cfg.Detector
	failed, slow := 0, 0
	limit := time.Duration(float64(base.Latency)*(1+c.LatencyMargin)) + c.LatencyFloor
	for _, pr := range probes {
		if pr.failed {
			failed++
		} else if pr.took > limit {
			slow++
		}
	}
	switch {
	case failed > 0:
		return fmt.Sprintf("%d of %d failed", failed, len(probes))
	case 2*slow > len(probes):
		return fmt.Sprintf("%d of %d slower than %s", slow, len(probes), limit.Round(time.Millisecond))
	}
	return ""
}

// baseline is the best p90 among the healthy endpoints with calls.
func baseline(figs []Figures) Figures {
	var b Figures
	for _, f := range figs {
		if !f.Isolated && f.Calls > 0 && (b.Calls == 0 || f.Latency < b.Latency) {
			b = f
		}
	}
	return b
}

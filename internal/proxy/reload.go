package proxy

import (
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// Applied says what Apply did to the upstreams, by name.
type Applied struct {
	Added   []string `json:"added,omitempty"`
	Changed []string `json:"changed,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Kept    []string `json:"kept,omitempty"`
}

// Apply puts a validated config's upstreams and limits in force, at once
// for every request that starts after it. An upstream whose settings are
// unchanged is kept whole: its limiter, breaker, pause, learned rate and
// cached responses go on as they were. A changed upstream starts afresh
// (its cached responses go too if its URL changed); requests already
// under way finish with the upstream they started with.
func (p *Proxy) Apply(cfg *config.Config) Applied {
	old := p.settings()
	next := &settings{
		upstreams:     make(map[string]*Upstream, len(cfg.Upstreams)),
		maxReq:        int64(cfg.Limits.MaxRequestBody),
		maxResp:       int64(cfg.Limits.MaxResponseBody),
		bodyRead:      cfg.Limits.BodyReadTimeout.D(),
		writeTimeout:  cfg.Limits.WriteTimeout.D(),
		maxResult:     int64(cfg.Jobs.MaxResult),
		callbackHosts: hostSet(cfg.Jobs.Callbacks.AllowedHosts),
	}
	var a Applied
	var retired []*Upstream
	for name, uc := range cfg.Upstreams {
		var prev *Upstream
		if old != nil {
			prev = old.upstreams[name]
		}
		switch {
		case prev == nil:
			a.Added = append(a.Added, name)
		case reflect.DeepEqual(prev.cfg, uc) && prev.zone == cfg.Zone:
			next.upstreams[name] = prev
			a.Kept = append(a.Kept, name)
			continue
		default:
			a.Changed = append(a.Changed, name)
			retired = append(retired, prev)
		}
		u := newUpstream(name, cfg.Zone, uc, p)
		if prev != nil && prev.eps.pool != nil && u.eps.pool != nil {
			u.eps.pool.Adopt(time.Now(), prev.eps.pool)
		}
		next.upstreams[name] = u
	}
	if old != nil {
		for name, u := range old.upstreams {
			if next.upstreams[name] == nil {
				a.Removed = append(a.Removed, name)
				retired = append(retired, u)
			}
		}
	}
	p.cur.Store(next)
	for _, u := range retired {
		if now := next.upstreams[u.Name]; now == nil || !slices.Equal(endpointURLs(now.cfg), endpointURLs(u.cfg)) {
			p.cache.Purge("GET|" + u.Name + "|") // answers of another vendor
		}
		u.eps.close()
		if t, ok := u.transport.(*http.Transport); ok {
			t.CloseIdleConnections() // calls under way keep theirs
		}
	}
	for _, l := range [][]string{a.Added, a.Changed, a.Removed, a.Kept} {
		slices.Sort(l)
	}
	return a
}

func endpointURLs(c *config.Upstream) []string {
	out := make([]string, len(c.Endpoints))
	for i, e := range c.Endpoints {
		out[i] = e.URL
	}
	slices.Sort(out)
	return out
}

// Close stops the upstreams' health tickers, once no request is served.
func (p *Proxy) closeUpstreams() {
	for _, u := range p.settings().upstreams {
		u.eps.close()
	}
}

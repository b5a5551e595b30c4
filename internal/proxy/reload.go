package proxy

import (
	"net/http"
	"reflect"
	"slices"

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
		case reflect.DeepEqual(prev.cfg, uc):
			next.upstreams[name] = prev
			a.Kept = append(a.Kept, name)
			continue
		default:
			a.Changed = append(a.Changed, name)
			retired = append(retired, prev)
		}
		next.upstreams[name] = newUpstream(name, uc, p)
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
		if now := next.upstreams[u.Name]; now == nil || now.cfg.URL != u.cfg.URL {
			p.cache.Purge("GET|" + u.Name + "|") // answers of another vendor
		}
		if t, ok := u.transport.(*http.Transport); ok {
			t.CloseIdleConnections() // calls under way keep theirs
		}
	}
	for _, l := range [][]string{a.Added, a.Changed, a.Removed, a.Kept} {
		slices.Sort(l)
	}
	return a
}

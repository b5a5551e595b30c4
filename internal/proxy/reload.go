package proxy

import (
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/upstream"
)

// Applied says what Apply did to the upstreams, by name.
type Applied = upstream.Applied

// Apply puts a validated config's upstreams and limits in force, at once
// for every request that starts after it. An upstream whose settings are
// unchanged is kept whole: its limiter, breaker, pause, learned rate,
// endpoint health and cached responses go on as they were. A changed
// upstream starts afresh (its cached responses go too if its endpoints
// changed); requests already under way finish with the upstream they
// started with.
func (p *Proxy) Apply(cfg *config.Config) Applied {
	p.cur.Store(&settings{
		maxReq:        int64(cfg.Limits.MaxRequestBody),
		maxResp:       int64(cfg.Limits.MaxResponseBody),
		bodyRead:      cfg.Limits.BodyReadTimeout.D(),
		writeTimeout:  cfg.Limits.WriteTimeout.D(),
		maxResult:     int64(cfg.Jobs.MaxResult),
		callbackHosts: hostSet(cfg.Jobs.Callbacks.AllowedHosts),
	})
	return p.ups.Apply(cfg)
}

// retired drops the cached answers of an upstream a reload removed, or
// pointed at other endpoints: they are another vendor's.
func (p *Proxy) retired(old, now *upstream.Upstream) {
	if now == nil || !upstream.SameEndpoints(old, now) {
		p.cache.Purge("GET|" + old.Name + "|")
	}
}

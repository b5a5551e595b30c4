package proxy

import (
	"net/http"

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
		credentials:   credentialHeaders(cfg),
	})
	return p.ups.Apply(cfg)
}

// credentialHeaders are the header names the config marks as credentials:
// those it injects into an upstream's requests (headers), and those that
// name a caller (a cache policy's identity_headers).
func credentialHeaders(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	add := func(c *config.Cache) {
		if c != nil {
			for _, h := range c.IdentityHeaders {
				out[http.CanonicalHeaderKey(h)] = true
			}
		}
	}
	for _, u := range cfg.Upstreams {
		for h := range u.Headers {
			out[http.CanonicalHeaderKey(h)] = true
		}
		add(u.Cache)
		for _, r := range u.Routes {
			if r != nil {
				add(r.Cache)
			}
		}
	}
	return out
}

// CredentialHeader reports whether the config in force marks header name
// as a credential, which the operator's job view shows redacted.
func (p *Proxy) CredentialHeader(name string) bool {
	return p.settings().credentials[http.CanonicalHeaderKey(name)]
}

// retired drops the cached answers of an upstream a reload removed, or
// pointed at other endpoints: they are another vendor's.
func (p *Proxy) retired(old, now *upstream.Upstream) {
	if now == nil || !upstream.SameEndpoints(old, now) {
		p.cache.Purge("GET|" + old.Name + "|")
	}
}

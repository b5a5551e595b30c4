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
func (p *Proxy) Apply(cfg *config.Config) Applied { return p.ups.Apply(cfg) }

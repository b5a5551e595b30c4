package upstream

import (
	"net/http"
	"time"

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/config"
)

// CachePolicy is a route's caching policy at run time, for the handler's
// cached mode.
type CachePolicy struct {
	Over       cache.Overrides
	KeyHeaders []string
	KeyQuery   []string // nil: the whole query
	// Identity is the request headers that tell callers apart: a cached
	// answer is only served to a request with the same values.
	Identity []string
	Wait     time.Duration // how long a miss waits for one in flight
}

func newCachePolicy(c *config.Cache, keyHeader string) *CachePolicy {
	if c == nil {
		return nil
	}
	identity := append([]string{"Authorization"}, c.IdentityHeaders...)
	if !c.ShareCookies {
		identity = append(identity, "Cookie")
	}
	if keyHeader != "" {
		identity = append(identity, keyHeader)
	}
	return &CachePolicy{
		Over: cache.Overrides{TTL: c.TTL.D(), StaleWhileRevalidate: c.StaleWhileRevalidate.D(), StaleIfError: c.StaleIfError.D(),
			StoreSetCookie: c.StoreSetCookie},
		KeyHeaders: canonical(c.KeyHeaders),
		KeyQuery:   c.KeyQuery,
		Identity:   canonical(identity),
		Wait:       c.CoalesceWait.D(),
	}
}

// canonical is names in net/http's canonical form, so that the handler
// can index a request's header map with them directly.
func canonical(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out
}

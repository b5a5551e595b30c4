package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
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

	anonymous [32]byte // KeyHash of a request with none of the headers
}

// KeyHash is a hash, in hex, of the request's values of the identity and
// key headers: callers that differ in them never share an entry, and no
// credential is kept in a key (keys appear in logs). The names are
// canonical already (newCachePolicy), so a request carrying none of them,
// the usual anonymous call, costs a few map lookups and no hashing.
func (rc *CachePolicy) KeyHash(h http.Header) [32]byte {
	for _, names := range [2][]string{rc.Identity, rc.KeyHeaders} {
		for _, name := range names {
			if _, ok := h[name]; ok {
				return rc.hash(h)
			}
		}
	}
	return rc.anonymous
}

// hash is KeyHash computed. Its input is built without fmt.
func (rc *CachePolicy) hash(h http.Header) [32]byte {
	buf := make([]byte, 0, 256)
	for _, names := range [2][]string{rc.Identity, rc.KeyHeaders} {
		for _, name := range names {
			buf = append(buf, name...)
			buf = append(buf, "=["...)
			for i, v := range h[name] {
				if i > 0 {
					buf = append(buf, ' ')
				}
				buf = strconv.AppendQuote(buf, v)
			}
			buf = append(buf, "];"...)
		}
		buf = append(buf, '|')
	}
	sum := sha256.Sum256(buf)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return out
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
	rc := &CachePolicy{
		Over: cache.Overrides{TTL: c.TTL.D(), StaleWhileRevalidate: c.StaleWhileRevalidate.D(), StaleIfError: c.StaleIfError.D(),
			StoreSetCookie: c.StoreSetCookie},
		KeyHeaders: canonical(c.KeyHeaders),
		KeyQuery:   c.KeyQuery,
		Identity:   canonical(identity),
		Wait:       c.CoalesceWait.D(),
	}
	rc.anonymous = rc.hash(nil)
	return rc
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

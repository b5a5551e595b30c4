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
	// answer is only served to a request with the same values. It is the
	// route's Caller, so that the cache and idempotency keys tell callers
	// apart alike.
	Identity Caller
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

// hash is KeyHash computed.
func (rc *CachePolicy) hash(h http.Header) [32]byte {
	return hashValues(h, rc.Identity, rc.KeyHeaders)
}

// hashValues is a hash, in hex, of h's values of each list of names: a
// list ends with '|', each name's values are quoted, so that no two
// different sets of values hash alike by moving bytes between them. Its
// input is built without fmt.
func hashValues(h http.Header, lists ...[]string) [32]byte {
	buf := make([]byte, 0, 256)
	for _, names := range lists {
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

// Caller is the request headers, canonical, that tell one caller from
// another: Authorization, Cookie unless the policy shares cookies, the
// cache policy's identity_headers and the rate limit's key_header (the
// tenant). The cache never serves one caller's entry to another, and an
// Idempotency-Key is one caller's own (docs/jobs.md), by the same list.
type Caller []string

// newCaller is the caller identity under the cache policy c (nil: none
// configured), with the rate limit's keyHeader.
func newCaller(c *config.Cache, keyHeader string) Caller {
	names := []string{"Authorization"}
	if c != nil {
		names = append(names, c.IdentityHeaders...)
	}
	if c == nil || !c.ShareCookies {
		names = append(names, "Cookie")
	}
	if keyHeader != "" {
		names = append(names, keyHeader)
	}
	return canonical(names)
}

// Of is who sent a request with header h, as a hash in hex: the same for
// the same values of the identity headers, never a credential itself.
func (c Caller) Of(h http.Header) string {
	sum := hashValues(h, c)
	return string(sum[:])
}

func newCachePolicy(c *config.Cache, caller Caller) *CachePolicy {
	if c == nil {
		return nil
	}
	rc := &CachePolicy{
		Over: cache.Overrides{TTL: c.TTL.D(), StaleWhileRevalidate: c.StaleWhileRevalidate.D(), StaleIfError: c.StaleIfError.D(),
			StoreSetCookie: c.StoreSetCookie, Targets: canonical(c.TargetedFields)},
		KeyHeaders: canonical(c.KeyHeaders),
		KeyQuery:   c.KeyQuery,
		Identity:   caller,
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

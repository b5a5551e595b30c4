package upstream

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seawall/seawall/internal/cache"
)

// CacheKeyPrefix is how every cache key of an upstream's path begins:
// "GET|upstream|/path". The handler's keys go on with "?query|hash", and
// purging by prefix works on this part.
func CacheKeyPrefix(upstream, path string) string { return "GET|" + upstream + "|" + path }

// Cache is the response cache the upstreams share: the handler's cached
// mode reads and fills it, and an unsafe call's answer, from the handler
// or a job, invalidates what it holds.
func (s *Set) Cache() cache.Store { return s.cache }

// PurgeCache removes an upstream's cached responses whose path starts with
// pathPrefix ("" for all of them) and reports how many keys went.
func (s *Set) PurgeCache(name, pathPrefix string) (int, error) {
	if s.Get(name) == nil {
		return 0, fmt.Errorf("%w %q", ErrUnknownUpstream, name)
	}
	if pathPrefix != "" && !strings.HasPrefix(pathPrefix, "/") {
		return 0, fmt.Errorf("path %q must start with /", pathPrefix)
	}
	return s.cache.Purge(CacheKeyPrefix(name, pathPrefix)), nil
}

// safeMethods do not change the resource (RFC 9110 §9.2.1).
var safeMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true}

// InvalidateAfter drops what the cache holds for a resource an unsafe
// request has just changed (RFC 9111 §4.4): after a non-error answer
// (below 400) to any method but GET, HEAD, OPTIONS and TRACE, every
// stored answer for the request's path, whatever its query, variant or
// caller, and for the paths its Location and Content-Location name on
// the same upstream. path is upstream-relative and escaped.
func (s *Set) InvalidateAfter(u *Upstream, method, path string, status int, h http.Header) {
	if safeMethods[method] || status >= 400 || status < 200 {
		return
	}
	s.cache.Purge(CacheKeyPrefix(u.Name, path+"?"))
	for _, name := range []string{"Location", "Content-Location"} {
		if rel, ok := relative(u, path, h.Get(name)); ok {
			s.cache.Purge(CacheKeyPrefix(u.Name, rel+"?"))
		}
	}
}

// relative is the upstream-relative escaped path of ref, resolved against
// the request's path, when ref names a resource of this upstream.
func relative(u *Upstream, from, ref string) (string, bool) {
	if ref == "" {
		return "", false
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", false
	}
	abs := u.Target(from, "").ResolveReference(r)
	if abs.Scheme != u.Base.Scheme || abs.Host != u.Base.Host {
		return "", false // another origin: RFC 9111 §4.4 says not to
	}
	base := strings.TrimSuffix(u.Base.EscapedPath(), "/")
	rel, ok := strings.CutPrefix(abs.EscapedPath(), base)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", false
	}
	return "/" + strings.TrimPrefix(rel, "/"), true
}

// retire drops the cached answers of an upstream a reload removed, or
// pointed at other endpoints: they are another vendor's.
func (s *Set) retire(old, now *Upstream) {
	if now == nil || !SameEndpoints(old, now) {
		s.cache.Purge(CacheKeyPrefix(old.Name, ""))
	}
}

// watchSharedCache exports the shared cache level's reads.
func watchSharedCache(reg *prometheus.Registry, t *cache.Tiered) {
	for i, result := range []string{"hit", "miss", "error"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "seawall", Name: "cache_shared_reads_total",
			Help:        "Reads of the cache level every replica shares in Redis, after a miss in memory: hit, miss, or error (Redis did not answer, or held what is not a response).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			hits, misses, errs := t.SharedReads()
			return float64([]int64{hits, misses, errs}[i])
		}))
	}
}

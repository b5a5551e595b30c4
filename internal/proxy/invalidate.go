package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/seawall/seawall/internal/upstream"
)

// safeMethods do not change the resource (RFC 9110 §9.2.1).
var safeMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true}

// InvalidateAfter drops what the cache holds for a resource an unsafe
// request has just changed (RFC 9111 §4.4): after a non-error answer
// (below 400) to any method but GET, HEAD, OPTIONS and TRACE, every
// stored answer for the request's path, whatever its query, variant or
// caller, and for the paths its Location and Content-Location name on
// the same upstream. path is upstream-relative and escaped.
func (p *Proxy) InvalidateAfter(u *upstream.Upstream, method, path string, status int, h http.Header) {
	if safeMethods[method] || status >= 400 || status < 200 {
		return
	}
	p.cache.Purge("GET|" + u.Name + "|" + path + "?")
	for _, name := range []string{"Location", "Content-Location"} {
		if rel, ok := relative(u, path, h.Get(name)); ok {
			p.cache.Purge("GET|" + u.Name + "|" + rel + "?")
		}
	}
}

// relative is the upstream-relative escaped path of ref, resolved against
// the request's path, when ref names a resource of this upstream.
func relative(u *upstream.Upstream, from, ref string) (string, bool) {
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

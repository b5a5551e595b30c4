package proxy

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/seawall/seawall/internal/config"
)

// hopByHop reports whether a header is connection-scoped (RFC 9110
// §7.6.1): never relayed either way.
func hopByHop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// notForwarded reports whether an application's request header stays at
// Seawall: hop-by-hop headers, forwarding headers (Seawall does not tell
// third parties about the network behind it), Seawall's control headers
// and the request id, which Seawall sets itself.
func notForwarded(name string) bool {
	switch name {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Prefix",
		"X-Real-Ip", "X-Client-Ip", "True-Client-Ip",
		"Seawall-Mode", "Seawall-Callback", requestIDHeader:
		return true
	}
	return hopByHop(name)
}

// forwardedHeaders tells the upstream, in the style its config names, of
// the app's request r as Seawall saw it: the peer's address, never what
// the app's own forwarding headers claim.
func (u *Upstream) forwardedHeaders(h http.Header, r *http.Request) {
	if u.forwarded == config.ForwardedNone {
		return
	}
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	switch u.forwarded {
	case config.ForwardedXForwarded:
		h["X-Forwarded-For"] = []string{ip}
		h["X-Forwarded-Proto"] = []string{proto}
		h["X-Forwarded-Host"] = []string{r.Host}
	case config.ForwardedRFC7239:
		node := ip
		if strings.Contains(ip, ":") {
			node = `"[` + ip + `]"` // an IPv6 address is quoted, in brackets
		}
		h["Forwarded"] = []string{"for=" + node + ";proto=" + proto + ";host=" + strconv.Quote(r.Host)}
	}
}

// notRelayed reports whether an upstream's response header stays at
// Seawall: hop-by-hop headers and a request id, which Seawall has set.
func notRelayed(name string) bool { return name == requestIDHeader || hopByHop(name) }

// copyHeader adds src's headers to dst, leaving out those skip names and
// those src's Connection header lists. The value slices are shared, not
// copied: neither header is changed in place afterwards, only replaced.
func copyHeader(dst, src http.Header, skip func(string) bool) {
	connection := src["Connection"]
	for k, vs := range src {
		if skip(k) || (connection != nil && listed(connection, k)) {
			continue
		}
		dst[k] = vs
	}
}

// filtered is a new header holding src's headers but those skip names.
func filtered(src http.Header, skip func(string) bool) http.Header {
	h := make(http.Header, len(src))
	copyHeader(h, src, skip)
	return h
}

// listed reports whether name is among the comma-separated header names of
// a Connection header, without allocating.
func listed(connection []string, name string) bool {
	for _, v := range connection {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(item), name) {
				return true
			}
		}
	}
	return false
}

// Shared single values, so that setting them costs no allocation. Header
// values are only ever replaced, never changed in place.
var (
	teTrailers  = []string{"trailers"}
	noUserAgent = []string{""}
	fromUp      = []string{"upstream"}
)

// outboundHeader is the header an application's request is sent upstream
// with, before prepareOutbound: what notForwarded allows, plus TE:
// trailers when the application asked for it, and an empty User-Agent when
// it sent none (Go's client would otherwise add its own).
func outboundHeader(in http.Header) http.Header {
	h := make(http.Header, len(in)+4)
	copyHeader(h, in, notForwarded)
	if listed(in["Te"], "trailers") {
		h["Te"] = teTrailers
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
	return h
}

// prepareOutbound makes an outbound request header Seawall's: the request
// id set and the upstream's credentials injected.
func (u *Upstream) prepareOutbound(h http.Header, requestID string) {
	h[requestIDHeader] = []string{requestID}
	for _, kv := range u.headers {
		h[kv.name] = kv.value
	}
}

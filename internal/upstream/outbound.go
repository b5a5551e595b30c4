package upstream

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/seawall/seawall/internal/config"
)

// RequestIDHeader carries the request id, to the app and to the vendor.
const RequestIDHeader = "Seawall-Request-Id"

// HopByHop reports whether a header is connection-scoped (RFC 9110
// §7.6.1): never relayed either way.
func HopByHop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// NotRelayed reports whether an upstream's response header stays at
// Seawall: hop-by-hop headers and a request id, which Seawall has set.
func NotRelayed(name string) bool { return name == RequestIDHeader || HopByHop(name) }

// NotForwarded reports whether an application's request header stays at
// Seawall: hop-by-hop headers, forwarding headers (Seawall does not tell
// third parties about the network behind it), Seawall's control headers
// and the request id, which Seawall sets itself.
func NotForwarded(name string) bool {
	switch name {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Prefix",
		"X-Real-Ip", "X-Client-Ip", "True-Client-Ip",
		"Seawall-Mode", "Seawall-Callback", RequestIDHeader:
		return true
	}
	return HopByHop(name)
}

// ForwardedHeaders tells the upstream, in the style its config names, of
// the app's request r as Seawall saw it: the peer's address, never what
// the app's own forwarding headers claim.
func (u *Upstream) ForwardedHeaders(h http.Header, r *http.Request) {
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

// CopyHeader adds src's headers to dst, leaving out those skip names and
// those src's Connection header lists. The value slices are shared, not
// copied: neither header is changed in place afterwards, only replaced.
func CopyHeader(dst, src http.Header, skip func(string) bool) {
	connection := src["Connection"]
	for k, vs := range src {
		if skip(k) || (connection != nil && Listed(connection, k)) {
			continue
		}
		dst[k] = vs
	}
}

// First is the first value of the field name, which must be in canonical
// form already: Header.Get without canonicalizing the name on every call.
func First(h http.Header, name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Listed reports whether name is among the comma-separated header names of
// a Connection header, without allocating.
func Listed(connection []string, name string) bool {
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
)

// outboundHeader is the header an application's request is sent upstream
// with, before PrepareOutbound: what notForwarded allows, plus TE:
// trailers when the application asked for it, and an empty User-Agent when
// it sent none (Go's client would otherwise add its own).
func outboundHeader(in http.Header) http.Header {
	h := make(http.Header, len(in)+4)
	CopyHeader(h, in, NotForwarded)
	if Listed(in["Te"], "trailers") {
		h["Te"] = teTrailers
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
	return h
}

// PrepareOutbound makes an outbound request header Seawall's: the request
// id set and the upstream's credentials injected.
func (u *Upstream) PrepareOutbound(h http.Header, requestID string) {
	h[RequestIDHeader] = []string{requestID}
	for _, kv := range u.headers {
		h[kv.name] = kv.value
	}
}

// Outbound is the request sent upstream for an app's request r: the same
// method and body, the call's target, and the header from outboundHeader,
// ForwardedHeaders and PrepareOutbound, under ctx.
func (u *Upstream) Outbound(ctx context.Context, r *http.Request, c *Call) *http.Request {
	h := outboundHeader(r.Header)
	u.ForwardedHeaders(h, r)
	u.PrepareOutbound(h, c.RequestID)
	out := http.Request{
		Method:        r.Method,
		URL:           c.target(),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          r.Body,
		ContentLength: r.ContentLength,
	}
	if r.ContentLength == 0 {
		out.Body = nil // a retried request without a body needs none
	}
	return out.WithContext(ctx)
}

package proxy

import (
	"net/http"
	"strings"
)

// hopByHop are the connection-scoped headers of RFC 9110 §7.6.1, removed
// both ways on the cached path (ReverseProxy does the same on the sync path).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func stripHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// prepareOutbound makes an outbound request header Seawall's: its control
// headers removed, the request id set, the upstream's credentials injected.
func (u *Upstream) prepareOutbound(h http.Header, requestID string) {
	for _, name := range controlHeaders {
		h.Del(name)
	}
	h[requestIDHeader] = []string{requestID}
	for _, kv := range u.headers {
		h[kv[0]] = []string{kv[1]}
	}
}

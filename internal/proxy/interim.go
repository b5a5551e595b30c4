package proxy

import (
	"net/http"
	"sync"

	"github.com/seawall/seawall/internal/upstream"
)

// Interim (1xx) responses from the vendor, like 103 Early Hints, are
// relayed to the app as they come, on the sync path and to the caller
// whose miss fills the cache; they are never stored. 100 Continue and
// 101 are the transport's own business, and an HTTP/1.0 app gets none
// (RFC 9110 §15.2).

// interimRelay writes a vendor's 1xx responses to one app's response.
// It lives in the request's exchange; begin readies it.
type interimRelay struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	done bool // the final response is under way, or the app is HTTP/1.0: no 1xx
}

// begin readies the relay for w, the answer to r.
func (ir *interimRelay) begin(w http.ResponseWriter, r *http.Request) {
	ir.mu.Lock()
	ir.w, ir.done = w, !r.ProtoAtLeast(1, 1)
	ir.mu.Unlock()
}

// hook is the relay as the upstream call's Interim; nil for none.
func (ir *interimRelay) hook() upstream.InterimRelay {
	if ir == nil {
		return nil
	}
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if ir.w == nil || ir.done {
		return nil
	}
	return ir
}

// Relay writes one 1xx answer to the app, unless the final one is under way.
func (ir *interimRelay) Relay(code int, h http.Header) {
	if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
		return
	}
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if ir.done {
		return
	}
	out := ir.w.Header()
	saved := out.Clone()
	copyHeader(out, h, notRelayed)
	ir.w.WriteHeader(code) // a 1xx goes out at once, the header with it
	for k := range out {
		delete(out, k)
	}
	for k, vs := range saved {
		out[k] = vs
	}
}

// stop ends the relaying before the final response is written.
func (ir *interimRelay) stop() {
	if ir == nil {
		return
	}
	ir.mu.Lock()
	ir.done = true
	ir.mu.Unlock()
}

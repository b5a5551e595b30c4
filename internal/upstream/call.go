package upstream

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/url"

	"github.com/seawall/seawall/internal/endpoint"
)

// Call is what the attempt loop knows of one call to make: the app's
// request as the handler resolved it, or a job's delivery.
type Call struct {
	Upstream  *Upstream
	Route     *Route
	Target    *url.URL // on the first endpoint, built when first needed; each attempt moves it
	Path      string   // upstream-relative, escaped, normalised
	Query     string   // raw
	RequestID string
	Tenant    string          // rate-limit key
	Client    context.Context // the client's own context, without the overall deadline
	// Attempts is how many attempts were made, once Do returns.
	Attempts int
	// Background marks a job delivery, which yields rate-limit slots to
	// interactive calls.
	Background bool
	// Cache, when the call fills the cache, says why it is made ("miss",
	// "revalidate"), for its trace.
	Cache string
	// Interim, when set, is given the vendor's 1xx answers as they come.
	Interim InterimRelay
	// endpoint is the one the last attempt went to: a retry avoids it.
	endpoint *endpoint.Endpoint
}

// InterimRelay takes the vendor's 1xx answers to a call.
type InterimRelay interface {
	Relay(code int, h http.Header)
}

// target is the call's Target, built from Path and Query if not set: a
// request answered without calling the vendor never builds it.
func (c *Call) target() *url.URL {
	if c.Target == nil {
		c.Target = c.Upstream.Target(c.Path, c.Query)
	}
	return c.Target
}

// ClientGone reports whether the client has gone away.
func (c *Call) ClientGone() bool { return c.Client.Err() != nil }

// NewRequestID is 96 random bits in hex. A request id must be unique, not
// secret: math/rand/v2's generator, seeded per process, costs no system
// call, where crypto/rand may cost one per request.
func NewRequestID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64()) //nolint:gosec // an id, not a secret
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32()) //nolint:gosec // an id, not a secret
	return hex.EncodeToString(b[:])
}

// Truncate cuts s to n bytes and an ellipsis, for logs and messages.
func Truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

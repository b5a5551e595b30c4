package proxy

import (
	"context"

	"net/url"
	"time"

	"github.com/seawall/seawall/internal/endpoint"
)

// call is what the handler knows of one proxied request, handed to the
// attempt loop.
type call struct {
	upstream *Upstream
	route    *Route
	target   *url.URL
	path     string // upstream-relative, escaped, normalised
	query    string // raw
	// endpoint is the one the last attempt went to: a retry avoids it.
	endpoint  *endpoint.Endpoint
	requestID string
	tenant    string          // rate-limit key
	client    context.Context // the client's own context, without the overall deadline
	start     time.Time
	attempts  int
	err       error // the error answered, if Seawall answered
	// background marks a job delivery, which yields rate-limit slots to
	// interactive calls.
	background bool
	// deadlines bound the app's side of a sync or cached exchange.
	deadlines *deadlines
	// interim relays the vendor's 1xx responses to the app; nil for none.
	interim *interimRelay
}

// clientGone reports whether the client has gone away.
func (c *call) clientGone() bool { return c.client.Err() != nil }

package proxy

import (
	"time"

	"github.com/seawall/seawall/internal/clock"
	"github.com/seawall/seawall/internal/upstream"
)

// call is what the handler knows of one proxied request: the upstream
// runtime's Call, and the app's side of the exchange.
type call struct {
	*upstream.Call
	start time.Time
	err   error // the error answered, if Seawall answered
	// deadlines bound the app's side of a sync or cached exchange.
	deadlines *deadlines
	// interim relays the vendor's 1xx responses to the app (the
	// exchange's own); nil for none.
	interim *interimRelay
	// overall is the sync path's context, bounded by the route's overall
	// timeout (the exchange's own): the vendor's connection keeps the
	// deadline, so the common call starts no timer for it.
	overall *clock.Bounded
	// relayed and left are the relay's writer and the vendor's body
	// under the size limit, kept here so that the relay makes neither.
	relayed deadlineWriter
	left    limitedBody
}

// exchange is one request's call, upstream call, deadlines, 1xx relay,
// overall context and request id field value, allocated together.
type exchange struct {
	rid     [1]string // the answer's Seawall-Request-Id
	c       call
	up      upstream.Call
	dl      deadlines
	ir      interimRelay
	overall clock.Bounded
}

package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// The app's side of an exchange has deadlines of its own: its request
// body must arrive within limits.body_read_timeout (and the route's
// overall), and no write of the answer may block longer than
// limits.write_timeout (nor past overall), so that a client that trickles
// its body or never reads its answer holds a connection no longer than
// that. Both are set on the connection through http.ResponseController.

// ErrRequestTimeout is answered when the app's body did not arrive in time.
var ErrRequestTimeout = errors.New("request body not received in time")

// deadlines are one exchange's bounds on the app's connection.
type deadlines struct {
	rc    http.ResponseController
	write time.Duration // per write
	hard  time.Time     // overall; zero: none
	set   time.Time     // the write deadline set last
	// finished is when the handler finished its answer, if it said so
	// (finish): end reads it rather than the clock.
	finished time.Time
	// bodyUntil is the body's deadline, zero when none; bodyDone is set
	// once the body has been read whole.
	bodyUntil time.Time
	bodyDone  atomic.Bool
}

// bodyExpired reports whether the body's deadline has passed before the
// body was read whole. It settles by the clock, because the failure shows
// first as the request's context ending (net/http takes a failed read of
// the connection for the client gone) rather than as the read's error.
func (d *deadlines) bodyExpired() bool {
	return !d.bodyUntil.IsZero() && !d.bodyDone.Load() && !time.Now().Before(d.bodyUntil)
}

// start gives the exchange, begun at now, its first write deadline.
func (d *deadlines) start(w http.ResponseWriter, write time.Duration, now time.Time) {
	d.rc, d.write = *http.NewResponseController(w), write
	d.setWrite(now.Add(write))
}

// bound makes every deadline end by t too.
func (d *deadlines) bound(t time.Time) {
	d.hard = t
	if t.Before(d.set) {
		d.setWrite(t)
	}
}

// renewWrite gives the next write its time.
func (d *deadlines) renewWrite() {
	t := time.Now().Add(d.write)
	if !d.hard.IsZero() && d.hard.Before(t) {
		t = d.hard
	}
	d.moveWrite(t)
}

// moveWrite sets the write deadline to t unless that would move it later
// by less than 1/64 of the write timeout: a small answer's few writes
// then cost one deadline rather than one each, and every write still has
// at least 63/64 of its time. A move earlier is always made.
func (d *deadlines) moveWrite(t time.Time) {
	if !d.set.After(t) && t.Sub(d.set) < d.write/64 {
		return
	}
	d.setWrite(t)
}

func (d *deadlines) setWrite(t time.Time) {
	d.set = t
	_ = d.rc.SetWriteDeadline(t)
}

// end leaves the connection as the server expects it for its next
// request, with time for the last flush. The read deadline needs no
// reset: net/http clears its own once the head is read, and one set
// for a body is lifted when the body ends (deadlineBody), or else stays,
// so that a body still due is not waited for.
func (d *deadlines) end() {
	now := d.finished
	if now.IsZero() {
		now = time.Now()
	}
	d.moveWrite(now.Add(d.write))
}

// readBody bounds the reading of r's body by until. It is set only while
// a body is being read: net/http reads the connection in the background
// after the body (to see a client leave), and a deadline passing there
// would be taken for the client gone.
func (d *deadlines) readBody(r *http.Request, until time.Time) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if !d.hard.IsZero() && d.hard.Before(until) {
		until = d.hard
	}
	if d.rc.SetReadDeadline(until) != nil {
		return
	}
	d.bodyUntil = until
	r.Body = &deadlineBody{ReadCloser: r.Body, d: d}
}

// deadlineBody lifts the read deadline once the body has been read.
type deadlineBody struct {
	io.ReadCloser
	d *deadlines
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.d.bodyDone.Store(true)
		_ = b.d.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = ErrRequestTimeout
	}
	return n, err
}

// deadlineWriter renews the write deadline before each write.
type deadlineWriter struct {
	http.ResponseWriter
	d *deadlines
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.d.renewWrite()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (w deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

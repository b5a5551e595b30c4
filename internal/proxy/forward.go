package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/upstream"
)

// serveSync sends a request down the sync path (package doc steps 3-5):
// one outbound request built from the app's, the attempt loop, and the
// answer relayed as it streams in.
func (p *Proxy) serveSync(w http.ResponseWriter, r *http.Request, c *call) {
	u := c.Upstream
	if err := u.BreakerRejecting(c.Route); err != nil {
		p.finish(w, r, c, answerError(w, c, err), "seawall")
		return
	}
	ctx := c.overall
	ctx.Init(r.Context(), c.start.Add(c.Route.Overall))
	defer ctx.Stop()
	c.interim.begin(w, r)
	defer c.interim.stop()
	st := p.settings()
	out := u.Outbound(ctx, r, c.Call)
	c.Interim = c.interim.hook()
	var body *appBody
	if out.Body != nil {
		body = &appBody{ReadCloser: http.MaxBytesReader(w, out.Body, st.MaxRequest)}
		out.Body = body
	}
	resp, err := u.Do(out, c.Call)
	if err != nil && body != nil {
		err = body.blame(err, c)
	}
	if err == nil && resp.ContentLength > st.MaxResponse {
		upstream.CloseBody(resp)
		err = fmt.Errorf("%w: %d bytes, the limit is %d", ErrResponseTooLarge, resp.ContentLength, st.MaxResponse)
	}
	if err != nil {
		c.interim.stop()
		p.finish(w, r, c, answerError(w, c, err), "seawall")
		return
	}
	c.interim.stop()
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	n, err := firstChunk(resp, r.Method, (*buf)[:min(int64(len(*buf)), st.MaxResponse+1)], c)
	if err == nil && int64(n) > st.MaxResponse {
		upstream.CloseBody(resp)
		err = fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, st.MaxResponse)
	}
	if err != nil {
		p.finish(w, r, c, answerError(w, c, err), "seawall")
		return
	}
	p.ups.InvalidateAfter(u, r.Method, c.Path, resp.StatusCode, resp.Header)
	err = p.relay(w, resp, (*buf)[:n], *buf, c, st.MaxResponse)
	p.finish(w, r, c, resp.StatusCode, "upstream")
	if err != nil {
		// The status line is out: all that is left is to cut the
		// response short, so the app cannot take it for whole.
		panic(http.ErrAbortHandler)
	}
}

// appBody is the app's request body, remembering why reading it failed,
// which can happen on Seawall's side (buffering) or in the transport
// (streaming).
type appBody struct {
	io.ReadCloser
	mu  sync.Mutex
	err error // guarded by mu
}

func (b *appBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

// blame names a call's failure after the app's body could not be read:
// the client went away (499), the body was too large (413), or it was
// malformed or cut short (400 bad-request); not the upstream's doing.
func (b *appBody) blame(err error, c *call) error {
	b.mu.Lock()
	readErr := b.err
	b.mu.Unlock()
	var tooLarge *http.MaxBytesError
	switch {
	case c.deadlines != nil && c.deadlines.bodyExpired():
		return fmt.Errorf("%w: within %s", ErrRequestTimeout, c.deadlines.bodyUntil.Sub(c.start).Round(time.Millisecond))
	case readErr == nil && !errors.Is(err, upstream.ErrBodyRead):
		return err
	case errors.Is(err, ErrRequestTooLarge):
		return err
	case errors.As(readErr, &tooLarge):
		return fmt.Errorf("%w: over %d bytes", ErrRequestTooLarge, tooLarge.Limit)
	case readErr != nil && !errors.Is(readErr, context.Canceled) && !errors.Is(readErr, net.ErrClosed):
		// A framing error, or a body cut short, says the request was bad
		// even if the client has stopped sending: answer it.
		return fmt.Errorf("%w: the body could not be read: %w", ErrBadRequest, readErr)
	case c.ClientGone():
		return ErrClientGone
	default:
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
}

// firstChunk reads the start of an upstream's body into buf before
// anything is written to the app, so that a failure there can still be
// answered as what it is (504 for a deadline, 502 for a body the vendor
// cut short) rather than as a cut-off answer whose status line already
// went out. A body of known length is read whole when it fits buf, so
// that a small answer is never relayed in part; a stream (unknown length)
// is relayed from its first byte. It returns how much it read.
func firstChunk(resp *http.Response, method string, buf []byte, c *call) (int, error) {
	want, stated := 1, resp.ContentLength > 0 && hasBody(method, resp.StatusCode)
	if stated {
		want = int(min(resp.ContentLength, int64(len(buf))))
	}
	n, err := io.ReadAtLeast(resp.Body, buf, want)
	if err == nil || (errors.Is(err, io.EOF) && !stated) { // EOF: nothing at all, which only a body of unknown or no length may be
		return n, nil
	}
	upstream.CloseBody(resp)
	switch {
	case c.ClientGone():
		return 0, ErrClientGone
	case errors.Is(err, context.DeadlineExceeded):
		return 0, fmt.Errorf("%w: the body did not start within the overall timeout of %s", ErrUpstreamTimeout, c.Route.Overall)
	default:
		return 0, &OutcomeUnknownError{Err: fmt.Errorf("reading the body: %w", err)}
	}
}

// hasBody reports whether an answer with status to method carries the
// body its Content-Length states (RFC 9110 §6.4.1): not to HEAD, nor a
// 1xx, 204 or 304.
func hasBody(method string, status int) bool {
	return method != http.MethodHead && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// relay writes an upstream's response to the app, first the chunk already
// read, flushing as it goes when the length is not known (a stream), and
// its trailers at the end. An error means the body was cut short; it is
// recorded on the call.
func (p *Proxy) relay(w http.ResponseWriter, resp *http.Response, first, buf []byte, c *call, maxResp int64) error {
	defer resp.Body.Close()
	h := w.Header()
	copyHeader(h, resp.Header, notRelayed)
	h["Seawall-Source"] = fromUp
	if c.Attempts > 1 {
		h["Seawall-Attempts"] = []string{strconv.Itoa(c.Attempts)}
	}
	w.WriteHeader(resp.StatusCode)
	if c.deadlines != nil {
		c.relayed = deadlineWriter{w, c.deadlines}
		w = &c.relayed
	}
	c.left = limitedBody{Reader: resp.Body, left: maxResp - int64(len(first))}
	err := copyBody(w, first, &c.left, resp.ContentLength < 0, buf)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("the app did not read the answer in time (limits.write_timeout, or the overall timeout): %w", err)
		case c.ClientGone():
			err = ErrClientGone
		}
		c.err = fmt.Errorf("relaying the body: %w", err)
		return c.err
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
	return nil
}

// copyBody writes first, then copies an upstream's body to the app through
// buf, flushing after each write when flush is set.
func copyBody(w http.ResponseWriter, first []byte, body io.Reader, flush bool, buf []byte) error {
	rc := http.NewResponseController(w)
	if len(first) > 0 {
		if _, err := w.Write(first); err != nil {
			return err
		}
		if flush {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
		}
	}
	if !flush {
		_, err := io.CopyBuffer(w, body, buf)
		return err
	}
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// limitedBody fails a response body that runs past the size limit, which
// makes the relay cut the response short rather than relay it whole.
type limitedBody struct {
	io.Reader
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), ErrResponseTooLarge
	}
	return n, err
}

// copyBuffers lend the response relays their copy buffers.
var copyBuffers = newPool(func() *[]byte { b := make([]byte, 32<<10); return &b })

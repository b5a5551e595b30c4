package server

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// answerWriter is the http.ResponseWriter Seawall's handler writes to on
// fasthttp's server. An answer is kept in fasthttp's Response, which
// fasthttp sends once the handler returns, unless the handler asks for
// what that cannot give: a 1xx before the answer, a flush (a body of
// unknown length relayed as it comes), or a body over keepLimit (held
// whole, it would wait in memory, past the handler's write deadlines,
// until the handler returned). Then the writer sends the answer
// on the connection itself, from the handler, as net/http does; fasthttp
// is left an empty answer to write, whose bytes the connection drops
// (rawConn.skip), and goes on serving the connection as before. (Handing
// the connection back through a hijack and Server.ServeConn instead costs
// a goroutine and a new 64 KiB read buffer an answer: 75 µs a streamed
// pass-through against net/http's 60.)
//
// Writing on the connection from the handler is safe because nothing
// else is waiting to be written there: Seawall's handler sets a write
// deadline on every request (SetWriteDeadline below is fasthttp's own),
// and fasthttp flushes every answer whose handler set one, pipelined or
// not, before it reads the next request.
type answerWriter struct {
	ctx    *fasthttp.RequestCtx
	raw    *rawConn // the connection under fasthttp's
	h      http.Header
	status int           // the final status, once written
	direct *bufio.Writer // the connection, once written on (a 1xx, or the answer)
	sent   bool          // the final head is on the connection
	// chunked says the body written on the connection is chunked; when
	// it is not (HTTP/1.0), the connection's end ends the body.
	chunked bool
	err     error // the first failed write on the connection
}

// keepLimit is the most of an answer's body kept in fasthttp's Response
// until the handler returns; a larger one is written on the connection
// as it comes.
const keepLimit = 64 << 10

func (w *answerWriter) Header() http.Header { return w.h }

func (w *answerWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.interim(code)
		return
	}
	w.status = code
}

// interim sends a 1xx at once, with the header fields set so far, as
// net/http does; they stay set for the final answer.
func (w *answerWriter) interim(code int) {
	if w.raw == nil || !w.ctx.Request.Header.IsHTTP11() || w.err != nil {
		return
	}
	bw := w.conn()
	head := appendFields(appendStatusLine(nil, code), w.h, false)
	_, err := bw.Write(append(head, "\r\n"...))
	w.fail(err)
	w.fail(bw.Flush())
}

func (w *answerWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		if w.raw == nil || len(w.ctx.Response.Body())+len(p) <= keepLimit {
			return w.ctx.Write(p)
		}
		// Too large to keep: the head goes out, and the body as it is
		// written, under the handler's write deadlines, not held whole
		// in memory until the handler returns.
		w.sendHead()
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowed(w.status, w.ctx.IsHead()) {
		return len(p), nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	var err error
	if w.chunked {
		var size [18]byte
		_, err = w.direct.Write(append(strconv.AppendInt(size[:0], int64(len(p)), 16), "\r\n"...))
	}
	n := 0
	if err == nil {
		n, err = w.direct.Write(p)
	}
	if w.chunked && err == nil {
		_, err = w.direct.Write(crlf)
	}
	w.fail(err)
	return n, err
}

// Flush sends the answer so far; from then on the answer goes on the
// connection as it is written.
func (w *answerWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.raw == nil {
		return // not a connection rawListener made: kept whole
	}
	if !w.sent {
		w.sendHead()
	}
	if w.err == nil {
		w.fail(w.direct.Flush())
	}
}

// SetReadDeadline and SetWriteDeadline are fasthttp's, which it resets
// after the answer (and which make it flush every answer).
func (w *answerWriter) SetReadDeadline(t time.Time) error  { return w.ctx.SetReadDeadline(t) }
func (w *answerWriter) SetWriteDeadline(t time.Time) error { return w.ctx.SetWriteDeadline(t) }

// conn is the connection's writer, taken at the first write on it and
// given back when the answer ends.
func (w *answerWriter) conn() *bufio.Writer {
	if w.direct == nil {
		w.direct = directWriters.Get().(*bufio.Writer)
		w.direct.Reset(w.ctx.Conn())
	}
	return w.direct
}

// sendHead writes the final answer's head on the connection, and what the
// handler wrote of its body before.
func (w *answerWriter) sendHead() {
	body := w.ctx.Response.Body()
	w.sniff(body)
	head := appendFields(appendStatusLine(nil, w.status), w.h, true)
	if _, ok := w.h["Date"]; !ok { // net/http adds one unless the handler set it
		head = appendField(head, "Date", time.Now().UTC().Format(http.TimeFormat))
	}
	switch {
	case !bodyAllowed(w.status, w.ctx.IsHead()):
	case w.h.Get("Content-Length") != "" && !hasTrailers(w.h):
	case w.ctx.Request.Header.IsHTTP11():
		w.chunked = true
		head = appendField(head, "Transfer-Encoding", "chunked")
	default:
		w.ctx.SetConnectionClose()
	}
	if w.ctx.Response.ConnectionClose() || w.ctx.Request.Header.ConnectionClose() || !w.ctx.Request.Header.IsHTTP11() {
		w.ctx.SetConnectionClose()
		head = appendField(head, "Connection", "close")
	}
	_, err := w.conn().Write(append(head, crlf...))
	w.fail(err)
	w.sent = true
	if len(body) > 0 {
		b := append([]byte(nil), body...)
		w.ctx.Response.ResetBody()
		_, _ = w.Write(b)
	}
}

// finish ends the answer once the handler has returned: fasthttp sends a
// kept answer (after a 1xx too, which is on the connection already), its
// trailers with it; one on the connection gets its last chunk and
// trailers, and fasthttp an empty answer whose exact bytes the connection
// drops.
func (w *answerWriter) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.direct != nil && !w.sent {
		// Only a 1xx went on the connection: the writer goes back.
		w.direct.Reset(nil)
		directWriters.Put(w.direct)
		w.direct = nil
	}
	if !w.sent && (w.raw == nil || !hasTrailers(w.h)) {
		w.sniff(w.ctx.Response.Body())
		for k, vs := range w.h {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				continue // trailers go only on a connection the writer has (raw)
			}
			for _, v := range vs {
				w.ctx.Response.Header.Add(k, v)
			}
		}
		w.ctx.SetStatusCode(w.status)
		return
	}
	if !w.sent {
		w.sendHead()
	}
	if w.chunked && w.err == nil {
		_, err := w.direct.Write(append(appendTrailers([]byte("0\r\n"), w.h), crlf...))
		w.fail(err)
	}
	if w.err == nil {
		w.fail(w.direct.Flush())
	}
	w.direct.Reset(nil)
	directWriters.Put(w.direct)
	w.direct = nil
	closing := w.err != nil || w.ctx.Response.ConnectionClose()
	w.ctx.Response.Reset()
	w.ctx.Response.SkipBody = true
	if closing {
		w.ctx.Response.SetConnectionClose()
	}
	w.raw.skip += len(w.ctx.Response.Header.Header())
}

// sniff sets the Content-Type net/http would: sniffed from the first of
// the body (http.DetectContentType) when the handler set none, did not
// say there is none (a nil value), and set no Content-Encoding.
func (w *answerWriter) sniff(body []byte) {
	if _, ok := w.h["Content-Type"]; ok || len(body) == 0 || w.h.Get("Content-Encoding") != "" || !bodyAllowed(w.status, false) {
		return
	}
	w.h["Content-Type"] = []string{http.DetectContentType(body)}
}

func (w *answerWriter) fail(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// bodyAllowed says an answer of this status to this method has a body.
func bodyAllowed(status int, head bool) bool {
	return !head && status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// hasTrailers says the handler set trailer fields (net/http's
// TrailerPrefix) or declared some.
func hasTrailers(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Trailer" {
			return true
		}
	}
	return false
}

var crlf = []byte("\r\n")

func appendStatusLine(b []byte, code int) []byte {
	b = strconv.AppendInt(append(b, "HTTP/1.1 "...), int64(code), 10)
	return append(append(append(b, ' '), http.StatusText(code)...), crlf...)
}

// appendFields appends a header's fields as net/http writes them: a CR or LF in a
// value becomes a space, and the fields net/http keeps for itself
// (framing, the trailers) are left out of a final head.
func appendFields(b []byte, h http.Header, final bool) []byte {
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || (final && (k == "Transfer-Encoding" || k == "Connection")) {
			continue
		}
		if final && k == "Content-Length" && hasTrailers(h) {
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	if final {
		var declared []string
		for k := range h {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				declared = append(declared, name)
			}
		}
		if len(declared) > 0 {
			b = appendField(b, "Trailer", strings.Join(declared, ", "))
		}
	}
	return b
}

func appendTrailers(b []byte, h http.Header) []byte {
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				b = appendField(b, name, v)
			}
		}
	}
	return b
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func appendField(b []byte, k, v string) []byte {
	return append(append(append(append(b, k...), ": "...), newlineToSpace.Replace(v)...), crlf...)
}

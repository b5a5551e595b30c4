package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/upstream"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
)

// serveFastHTTPSeawall serves Seawall's own handler, every policy on, on
// fasthttp's server, behind Seawall's framing listener: the request made
// as serveFastHTTPAdapted makes it, the answer written through
// answerWriter (a streamed body flushed as it comes, 1xx, trailers, as
// net/http's server gives them; TestAnswersAsNetHTTP holds the two
// alike), the request's body streamed to the handler: what ADR 0006's
// step 3 would give before anything else moves. A prototype still:
// fasthttp's own answers to a request it cannot parse are not Seawall's
// problems, and there is no h2c.
//
// watch says how the app's hanging up is noticed while the handler runs,
// which net/http does with a read in the background and fasthttp does
// not do: "sweep" a peek every 50 ms at the requests in flight for
// longer (swept), "always" a watch for every request as net/http's
// (watched), "context" a context that could end and never does, "" a
// context that cannot end (which spares Seawall's handler the work of
// hearing of an end).
func serveFastHTTPSeawall(listen, configFile, watch string) error {
	cfg, err := config.LoadFile(configFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return serveSeawallOn(ln, cfg, watch)
}

// serveSeawallOn is serveFastHTTPSeawall on ln, with cfg.
func serveSeawallOn(ln net.Listener, cfg *config.Config, watch string) error {
	ups := upstream.NewSet(cfg, upstream.Parts{Metrics: proxy.NewMetrics(), Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	p := proxy.New(cfg, ups)
	// A request's body is streamed to the handler, which holds it to
	// Seawall's limit (limits.max_request_body) and its read deadline
	// (limits.body_read_timeout): every body, since fasthttp reads one
	// under MaxRequestBodySize whole before it calls the handler, under
	// its own ReadTimeout only.
	srv := &fasthttp.Server{ReadTimeout: 10 * time.Second, ReadBufferSize: 64 << 10, NoDefaultServerHeader: true, NoDefaultContentType: true,
		StreamRequestBody: true, MaxRequestBodySize: 1, ErrorHandler: refuseAsNetHTTP}
	rl := &rawListener{Listener: ln}
	h := adaptAnswers(p, proxy.ConnContext, rl)
	switch watch {
	case "sweep":
		h = swept(h, rl, 50*time.Millisecond)
	case "context":
		h = cancelable(h)
	case "always":
		h = watched(h, rl)
	}
	srv.Handler = h
	return srv.Serve(&outerListener{Listener: proxy.Listener(rl), raw: rl})
}

// rawListener and outerListener pair each connection the framing
// listener hands out with the connection under it (its socket, which the
// watch peeks at, and where the answer writer drops what fasthttp writes
// after an answer the writer sent itself); the pair is forgotten when
// the connection closes.
type rawListener struct {
	net.Listener
	last  *rawConn
	conns sync.Map // the framing listener's net.Conn: the *rawConn under it
}

func (l *rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	l.last = &rawConn{Conn: c, rc: rc, l: l}
	return l.last, nil
}

// rawConn is an accepted connection, with its socket for the watch.
type rawConn struct {
	net.Conn
	rc    syscall.RawConn
	l     *rawListener
	outer net.Conn // what the framing listener made of it
	// skip is how many bytes written next are dropped (only the
	// goroutine serving the connection writes, and sets it).
	skip int
}

func (c *rawConn) Write(p []byte) (int, error) {
	if c.skip == 0 {
		return c.Conn.Write(p)
	}
	d := min(c.skip, len(p))
	c.skip -= d
	if d == len(p) {
		return d, nil
	}
	n, err := c.Conn.Write(p[d:])
	return d + n, err
}

func (c *rawConn) Close() error {
	c.l.conns.Delete(c.outer)
	return c.Conn.Close()
}

type outerListener struct {
	net.Listener
	raw *rawListener
}

func (l *outerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept() // one goroutine accepts: raw.last is under c
	if err == nil {
		l.raw.last.outer = c
		l.raw.conns.Store(c, l.raw.last)
	}
	return c, err
}

// watched runs h with the request's context ended when the app hangs up
// while h runs: a goroutine waits, through the runtime's poller, for the
// connection to turn readable, and peeks without reading. The end of the
// stream ends the context; bytes (a pipelined request) end the watch. At
// h's end the watch is stopped by a read deadline in the past, which
// fasthttp's own read deadline replaces before it reads the next request.
func watched(h fasthttp.RequestHandler, rl *rawListener) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		v, ok := rl.conns.Load(ctx.Conn())
		if !ok {
			h(ctx)
			return
		}
		rc := v.(*rawConn).rc
		gone, cancel := context.WithCancel(context.Background())
		ctx.SetUserValue(goneKey, gone)
		done := make(chan struct{})
		go func() {
			defer close(done)
			var b [1]byte
			_ = rc.Read(func(fd uintptr) bool {
				n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
				if errors.Is(err, syscall.EAGAIN) {
					return false // wait for readability
				}
				if n == 0 && err == nil {
					cancel() // the app hung up
				}
				return true
			})
		}()
		h(ctx)
		_ = ctx.Conn().SetReadDeadline(time.Unix(1, 0))
		<-done
		cancel()
	}
}

// goneKey holds the context the watch ends.
const goneKey = "seawall-gone"

// adapt serves a net/http handler on fasthttp: the request copied into an
// *http.Request whose context connContext gives from the connection, the
// answer set through fastWriter (kept, and sent when the handler
// returns), and net/http's ErrAbortHandler taken as net/http takes it,
// the connection closed with nothing sent.
func adapt(h http.Handler, connContext func(context.Context, net.Conn) context.Context) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		r := request(ctx, connContext)
		defer abortAsNetHTTP(ctx)
		h.ServeHTTP(&fastWriter{ctx: ctx, h: make(http.Header)}, r)
	}
}

// adaptAnswers is adapt with the answer written through answerWriter:
// 1xx, flushes and trailers as net/http gives them, over the connections
// rl pairs.
func adaptAnswers(h http.Handler, connContext func(context.Context, net.Conn) context.Context, rl *rawListener) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if reason := badFields(&ctx.Request.Header); reason != "" {
			// net/http refuses these before its handler runs.
			ctx.Error("400 Bad Request: "+reason, http.StatusBadRequest)
			ctx.SetConnectionClose()
			return
		}
		r := request(ctx, connContext)
		defer abortAsNetHTTP(ctx)
		w := &answerWriter{ctx: ctx, h: make(http.Header)}
		if v, ok := rl.conns.Load(ctx.Conn()); ok {
			w.raw = v.(*rawConn)
		}
		h.ServeHTTP(w, r)
		w.finish()
	}
}

// refuseAsNetHTTP answers a request fasthttp could not read as net/http
// answers one it could not: 431 for a head over the limit, 400 else, the
// status's text as the body, the connection closed.
func refuseAsNetHTTP(ctx *fasthttp.RequestCtx, err error) {
	status := http.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		status = http.StatusRequestHeaderFieldsTooLarge
	}
	ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status), status)
	ctx.SetConnectionClose()
}

// badFields says what is wrong with a request's fields that net/http's
// server refuses and fasthttp's serves: a name that is not a token (a
// space inside it: "Bad Field"), a value with a control character.
func badFields(h *fasthttp.RequestHeader) string {
	for k, v := range h.All() {
		if !httpguts.ValidHeaderFieldName(string(k)) {
			return "invalid header name"
		}
		if !httpguts.ValidHeaderFieldValue(string(v)) {
			return "invalid header value"
		}
	}
	return ""
}

// abortAsNetHTTP takes a handler's panic with net/http's ErrAbortHandler
// as net/http does: the connection is closed with nothing more sent.
func abortAsNetHTTP(ctx *fasthttp.RequestCtx) {
	if v := recover(); v != nil {
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			ctx.HijackSetNoResponse(true)
			ctx.Hijack(func(net.Conn) {})
			return
		}
		panic(v)
	}
}

// request is the *http.Request of a fasthttp request.
func request(ctx *fasthttp.RequestCtx, connContext func(context.Context, net.Conn) context.Context) *http.Request {
	r := &http.Request{
		Method: string(ctx.Method()), URL: &url.URL{Path: string(ctx.Path()), RawQuery: string(ctx.URI().QueryString())},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, ctx.Request.Header.Len()),
		Host: string(ctx.Host()), RequestURI: string(ctx.RequestURI()), RemoteAddr: ctx.RemoteAddr().String(), Body: http.NoBody,
	}
	if !ctx.Request.Header.IsHTTP11() {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		r.URL = u
	}
	for k, v := range ctx.Request.Header.All() {
		if name := string(k); name != "Host" {
			r.Header[name] = append(r.Header[name], string(v))
		}
	}
	switch cl := ctx.Request.Header.ContentLength(); {
	case cl == 0, cl < -1: // none (-2: neither Content-Length nor chunked)
	case connContext == nil: // fasthttp-adapted reads the body whole
		body := ctx.PostBody()
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	default:
		// Streamed to the handler as it arrives (the server's
		// StreamRequestBody), or from memory when fasthttp read it with
		// the head.
		if st := ctx.RequestBodyStream(); st != nil {
			r.Body = io.NopCloser(st)
		} else {
			r.Body = io.NopCloser(bytes.NewReader(ctx.PostBody()))
		}
		r.ContentLength = int64(cl)
		if cl == -1 {
			r.TransferEncoding = []string{"chunked"}
		}
	}
	if connContext != nil {
		base := context.Background()
		if gone, ok := ctx.UserValue(goneKey).(context.Context); ok {
			base = gone
		}
		r = r.WithContext(connContext(base, ctx.Conn()))
	}
	return r
}

// Flush does nothing: fasthttp sends the answer once the handler returns.
func (w *fastWriter) Flush() {}

// SetReadDeadline and SetWriteDeadline set the connection's, as
// http.ResponseController does on net/http's.
func (w *fastWriter) SetReadDeadline(t time.Time) error  { return w.ctx.Conn().SetReadDeadline(t) }
func (w *fastWriter) SetWriteDeadline(t time.Time) error { return w.ctx.Conn().SetWriteDeadline(t) }

// swept runs h with the request's context ended when the app hangs up
// while h runs, found by one goroutine for all requests: every tick it
// peeks, without reading or waiting, at the connection of each request
// that was in flight at the tick before, and ends the context of those
// whose app has hung up. A request pays a map's insert and delete; one
// that runs longer pays a system call a tick. The sweep holds the lock
// while it peeks, so a request's connection is not closed under it.
func swept(h fasthttp.RequestHandler, rl *rawListener, tick time.Duration) fasthttp.RequestHandler {
	type entry struct {
		rc     syscall.RawConn
		cancel context.CancelFunc
		gen    uint64
	}
	var (
		mu       sync.Mutex
		inflight = map[*entry]struct{}{}
		gen      uint64
	)
	go func() {
		var b [1]byte
		for range time.Tick(tick) {
			mu.Lock()
			for e := range inflight {
				if e.gen == gen {
					continue // younger than a tick
				}
				_ = e.rc.Control(func(fd uintptr) {
					n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
					if n == 0 && err == nil {
						e.cancel() // the app hung up
					}
				})
			}
			gen++
			mu.Unlock()
		}
	}()
	return func(ctx *fasthttp.RequestCtx) {
		v, ok := rl.conns.Load(ctx.Conn())
		if !ok {
			h(ctx)
			return
		}
		gone, cancel := context.WithCancel(context.Background())
		ctx.SetUserValue(goneKey, gone)
		e := &entry{rc: v.(*rawConn).rc, cancel: cancel}
		mu.Lock()
		e.gen = gen
		inflight[e] = struct{}{}
		mu.Unlock()
		h(ctx)
		mu.Lock()
		delete(inflight, e)
		mu.Unlock()
		cancel()
	}
}

// cancelable gives h's request a context that can end, and never ends
// it: what the watches cost beyond their watching.
func cancelable(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		gone, cancel := context.WithCancel(context.Background())
		ctx.SetUserValue(goneKey, gone)
		h(ctx)
		cancel()
	}
}

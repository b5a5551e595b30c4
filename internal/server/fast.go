package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/routine"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
)

// appServer serves one listener until Shutdown or Close: net/http's
// *http.Server, or fastServer (engine: fasthttp).
type appServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// AppServer is the server of seawall serve's app listener for engine
// (config.EngineNetHTTP, config.EngineFastHTTP, or "" for
// config.DefaultEngine), to be served on a
// plain TCP listener: it puts Seawall's framing listener
// (proxy.Listener) over it itself. The proxy's tests serve their Seawall
// with it, so that they run what seawall serve runs.
//
// The fasthttp engine's goroutines start through g (nil in tests that
// build one part without a server).
func AppServer(h http.Handler, log *slog.Logger, g *routine.Group, h2c bool, engine string) appServer {
	if engine == "" {
		engine = config.DefaultEngine
	}
	if engine == config.EngineFastHTTP {
		return newFastServer(h, log, g, h2c)
	}
	return framed{HTTPServer(h, log, h2c)}
}

// framed serves net/http's server over Seawall's framing listener.
type framed struct{ *http.Server }

func (f framed) Serve(ln net.Listener) error { return f.Server.Serve(proxy.Listener(ln)) }

// fastServer serves Seawall's handler over HTTP/1.x on fasthttp's server
// (ADR 0006), as net/http's server serves it: the request made as an
// *http.Request whose context ends when the app hangs up, its body
// streamed to the handler; the answer written through answerWriter (kept
// and sent when the handler returns, or streamed, 1xx and trailers as
// net/http sends them); the requests net/http refuses before its handler
// runs refused alike. With h2c, a connection that opens with HTTP/2's
// preface is handed to net/http's HTTP/2 server.
type fastServer struct {
	h       http.Handler
	log     *slog.Logger
	srv     *fasthttp.Server
	h2      *http.Server // nil without h2c
	gone    *sweeper
	g       *routine.Group
	mu      sync.Mutex
	ln      net.Listener // what Serve serves, closed by Shutdown
	rl      *rawListener // over ln, once Serve has begun
	closing bool
}

// The limits net/http's server has in HTTPServer: a request's head (its
// size and the time it may take), an idle connection.
const (
	maxHeadBytes    = 64 << 10
	headReadTimeout = 10 * time.Second
	idleTimeout     = 120 * time.Second
)

func newFastServer(h http.Handler, log *slog.Logger, g *routine.Group, h2c bool) *fastServer {
	s := &fastServer{h: h, log: log, g: g, gone: newSweeper(g, 50*time.Millisecond)}
	// A request's body is streamed to the handler, which holds it to
	// Seawall's limit (limits.max_request_body) and read deadline
	// (limits.body_read_timeout): every body, since fasthttp reads one
	// under MaxRequestBodySize whole before it calls the handler, under
	// its own ReadTimeout only.
	s.srv = &fasthttp.Server{
		ReadTimeout: headReadTimeout, IdleTimeout: idleTimeout, ReadBufferSize: maxHeadBytes,
		NoDefaultServerHeader: true, NoDefaultContentType: true, CloseOnShutdown: true,
		StreamRequestBody: true, MaxRequestBodySize: 1,
		ErrorHandler: s.refuse, Logger: printfLogger{log},
		// fasthttp's message about a request it could not read quotes the
		// request's bytes otherwise, credentials and all.
		SecureErrorLogMessage: true,
	}
	if h2c {
		s.h2 = HTTPServer(h, log, true)
	}
	return s
}

// Serve serves ln (a TCP listener) until Shutdown or Close.
func (s *fastServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	under := ln
	if s.h2 != nil {
		pl := newPrefaceListener(ln, s.g)
		under = pl
		s.g.Go("h2c listener", func() { _ = s.h2.Serve(proxy.Listener(pl.h2)) })
	}
	rl := &rawListener{Listener: under, gone: s.gone}
	s.mu.Lock()
	s.rl = rl
	s.mu.Unlock()
	s.srv.Handler = s.handler(rl)
	err := s.srv.Serve(&outerListener{Listener: proxy.Listener(rl), raw: rl})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return http.ErrServerClosed
	}
	return err
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their request (fasthttp closes each after its answer)
// until ctx ends.
func (s *fastServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		// Closed here too: fasthttp's Shutdown does nothing to a
		// listener its Serve has not reached yet.
		_ = s.ln.Close()
	}
	s.mu.Unlock()
	defer s.gone.stop()
	err := s.srv.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener, closed above
	}
	if s.h2 != nil {
		err = errors.Join(err, s.h2.Shutdown(ctx))
	}
	return err
}

// Close stops accepting and closes idle connections, waiting for none.
func (s *fastServer) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// handler runs Seawall's handler for each request fasthttp has read on
// a connection rl accepted.
func (s *fastServer) handler(rl *rawListener) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if reason := badFields(&ctx.Request.Header); reason != "" {
			// net/http refuses these before its handler runs.
			ctx.Error("400 Bad Request: "+reason, http.StatusBadRequest)
			ctx.SetConnectionClose()
			return
		}
		raw := rl.conn(ctx.Conn())
		var base context.Context
		remote := ""
		if raw != nil {
			base, remote = raw.context(), raw.remoteAddr()
		} else {
			base, remote = proxy.ConnContext(context.Background(), ctx.Conn()), ctx.RemoteAddr().String()
		}
		h := s.gone.watch(raw, base)
		defer s.gone.unwatch(raw, h)
		s.serve(ctx, raw, request(ctx, h, remote, raw.fields()))
	}
}

// serve runs Seawall's handler on r and ends the answer; net/http's
// ErrAbortHandler closes the connection with nothing more sent, as on
// net/http.
func (s *fastServer) serve(ctx *fasthttp.RequestCtx, raw *rawConn, r *http.Request) {
	defer abortAsNetHTTP(ctx)
	w := raw.answerWriter(ctx)
	s.h.ServeHTTP(w, r)
	w.finish()
}

// refuse answers a request fasthttp could not read as net/http answers
// one it could not: 431 for a head over the limit, 400 else, the
// status's text as the body, the connection closed. An HTTP/1.0 request
// with Transfer-Encoding, which net/http hands to the handler without
// the field, gets Seawall's own answer to it (a bad-request problem):
// the handler is run on what fasthttp read of it.
func (s *fastServer) refuse(ctx *fasthttp.RequestCtx, err error) {
	ctx.SetConnectionClose()
	if base := proxy.ConnContext(context.Background(), ctx.Conn()); proxy.FaultyFraming(base) {
		r := request(ctx, base, ctx.RemoteAddr().String(), nil)
		r.Proto, r.ProtoMinor, r.Body, r.ContentLength, r.TransferEncoding = "HTTP/1.0", 0, http.NoBody, 0, nil
		s.serve(ctx, nil, r)
		ctx.SetConnectionClose()
		return
	}
	status := http.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		status = http.StatusRequestHeaderFieldsTooLarge
	}
	ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status), status)
}

// badFields says what is wrong with a request's fields that net/http's
// server refuses and fasthttp's (v1.79.0) serves: a name that is not a
// token (a space inside it: "Bad Field"), a value with a control
// character.
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

// request is the *http.Request of a fasthttp request: its context base
// (which carries proxy.ConnContext's mark, as a request on net/http
// does), its body
// streamed from the connection as it arrives; remote is the app's
// address; its fields are put in fields, which must be empty (nil: a
// new map). Made with few allocations (BenchmarkFastRequest): a common
// method or field name is not copied, the fields' values are one string.
func request(ctx *fasthttp.RequestCtx, base context.Context, remote string, fields http.Header) *http.Request {
	if fields == nil {
		fields = make(http.Header, ctx.Request.Header.Len())
	}
	uri, host := copyFields(fields, &ctx.Request.Header, ctx.RequestURI(), ctx.Host())
	r := &http.Request{
		Method: common(commonMethods, ctx.Method()), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: fields,
		Host:   host, RequestURI: uri, RemoteAddr: remote, Body: http.NoBody,
	}
	if !ctx.Request.Header.IsHTTP11() {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	if u, err := requestURL(uri); err == nil {
		r.URL = u // the target as sent: fasthttp's Path has its dot segments removed
	} else {
		r.URL = &url.URL{Path: string(ctx.Path()), RawQuery: string(ctx.URI().QueryString())}
	}
	switch cl := ctx.Request.Header.ContentLength(); {
	case cl == 0, cl < -1: // none (-2: neither Content-Length nor chunked)
	default:
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
	return r.WithContext(base)
}

// requestURL is url.ParseRequestURI(uri), the common case made without
// it: a path of characters a URL's path never escapes, and a query
// without control characters, parse to just those two (FuzzRequestURL
// holds it to url.ParseRequestURI).
func requestURL(uri string) (*url.URL, error) {
	path, query, hasQuery := strings.Cut(uri, "?")
	if len(path) == 0 || path[0] != '/' || strings.HasPrefix(path, "//") || (hasQuery && query == "") {
		return url.ParseRequestURI(uri)
	}
	for i := 0; i < len(path); i++ {
		if !pathSafe[path[i]] {
			return url.ParseRequestURI(uri)
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < ' ' || c == 0x7f {
			return url.ParseRequestURI(uri)
		}
	}
	return &url.URL{Path: path, RawQuery: query}, nil
}

// pathSafe marks the bytes a URL's path holds as they are (url's
// escaping leaves them alone): unreserved, and the sub-delimiters and
// separators RFC 3986 allows in a path segment that url does not escape.
var pathSafe = func() (safe [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			safe[c] = true
		case strings.IndexByte("-_.~$&+,/:;=@", byte(c)) >= 0:
			safe[c] = true
		}
	}
	return safe
}()

// copyFields sets a request's fields but Host in h, keyed as net/http
// keys them (fasthttp has made each name canonical, as net/http does):
// a common name without a copy, the values sliced from one string and
// their slices from one array. It returns the request's target and host
// as strings, sliced from that string too.
func copyFields(h http.Header, from *fasthttp.RequestHeader, target, host []byte) (string, string) {
	size, n := len(target)+len(host), 0
	for _, v := range from.All() {
		size, n = size+len(v), n+1
	}
	var b strings.Builder
	b.Grow(size)
	b.Write(target)
	b.Write(host)
	for _, v := range from.All() {
		b.Write(v)
	}
	all, off := b.String(), len(target)+len(host)
	vals := make([]string, 0, n)
	for k, v := range from.All() {
		val := all[off : off+len(v)]
		off += len(v)
		name := common(commonFields, k)
		if name == "Host" {
			continue
		}
		if prev, ok := h[name]; ok {
			h[name] = append(prev, val)
			continue
		}
		vals = append(vals, val)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	return all[:len(target)], all[len(target) : len(target)+len(host)]
}

// commonFields are the field names most requests carry.
var commonFields = interned(
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
	"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date", "Expect",
	"Forwarded", "Host", "Idempotency-Key", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
	"If-Unmodified-Since", "Keep-Alive", "Origin", "Pragma", "Range", "Referer", "Seawall-Callback",
	"Seawall-Mode", "Seawall-Request-Id", "Te", "Traceparent", "Tracestate", "Trailer",
	"Transfer-Encoding", "Upgrade", "User-Agent", "Via", "X-Api-Key", "X-Forwarded-For",
	"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
)

// commonMethods are the methods most requests carry.
var commonMethods = interned(http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodHead, http.MethodOptions)

// interned maps each of names to itself.
func interned(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, k := range names {
		m[k] = k
	}
	return m
}

// common is b as a string: one of known's without a copy, else a copy.
func common(known map[string]string, b []byte) string {
	if s, ok := known[string(b)]; ok {
		return s
	}
	return string(b)
}

// printfLogger is fasthttp's Logger over Seawall's log, at debug: what
// fasthttp logs is a connection it could not serve (a request it could
// not read, which it answered 400), which net/http's server does not log
// at all, and which any client could repeat to fill the log.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("http server: " + fmt.Sprintf(format, args...))
	}
}

// rawListener and outerListener pair each connection the framing
// listener hands out with the connection under it (its socket, which
// the sweep peeks at, and where the answer writer drops what fasthttp
// writes after an answer the writer sent itself); the pair is forgotten
// when the connection closes. One goroutine accepts (fasthttp's), so the
// connection rawListener accepted last is the one under what the
// framing listener hands out next.
type rawListener struct {
	net.Listener
	last  *rawConn
	conns sync.Map // the framing listener's net.Conn: the *rawConn under it
	gone  *sweeper // watches its connections' requests; nil: none
	// deadlines counts the deadlines put on sockets, for the tests.
	deadlines atomic.Int64
}

func (l *rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("a %T has no socket to watch", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	l.last = &rawConn{Conn: c, rc: rc, l: l}
	if l.gone != nil {
		l.gone.add(l.last)
	}
	return l.last, nil
}

// conn is the connection under outer, nil if rl did not accept it.
func (l *rawListener) conn(outer net.Conn) *rawConn {
	if v, ok := l.conns.Load(outer); ok {
		return v.(*rawConn)
	}
	return nil
}

// rawConn is an accepted connection, with its socket for the sweep.
type rawConn struct {
	net.Conn
	rc    syscall.RawConn
	l     *rawListener
	outer net.Conn // what the framing listener made of it
	// skip is how many bytes written next are dropped (only the
	// goroutine serving the connection writes, and sets it).
	skip int
	// remote is the app's address as text, made at its first request
	// (by the goroutine serving the connection).
	remote string
	// req is the context of the request in flight, nil between
	// requests, and since the sweep's tick when it began (sweeper).
	req   atomic.Pointer[hangup]
	since atomic.Uint64
	// base is the context of the connection's requests: its values
	// (the framing listener's), made at its first request.
	base context.Context
	// header and answer are the request's fields and the answer's writer
	// (its fields with it), made at the first request and cleared for
	// each next one: Seawall's handler keeps neither past its return (a
	// background revalidation works on a clone of the request).
	header http.Header
	answer answerWriter
	// rd and wd are the read and write deadlines, put on the socket by
	// the next read or write (lazyDeadline).
	rd, wd lazyDeadline
}

// lazyDeadline is one direction's deadline on a connection. fasthttp
// sets four a request (an idle and a head deadline for reading, and the
// write deadline Seawall's handler sets, cleared after the answer), each
// a change to the runtime's timers; here a deadline is only noted when
// set, and put on the socket by the next read or write, unless the
// socket's own ends no later than it and no sooner than 63/64 of the
// time left before it (the rule deadlines.moveWrite keeps too). A
// keep-alive connection so keeps one deadline each way across the
// requests of a fraction of its timeout, where it had four changes a
// request, and a read or write that blocks is still bounded by what was
// set last. A read or a write is made by one goroutine at a time; a
// deadline may be set from any.
type lazyDeadline struct {
	asked   atomic.Int64 // Unix nanoseconds; 0: none
	applied int64        // the socket's, by the reading (or writing) goroutine only
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (no deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

func (d *lazyDeadline) set(t time.Time) { d.asked.Store(unixNano(t)) }

// due says whether the deadline asked must be put on the socket before
// a read (or write), and which: the socket's would not do (see
// lazyDeadline). put(t) records that it was.
func (d *lazyDeadline) due() (time.Time, bool) {
	asked := d.asked.Load()
	if asked == d.applied {
		return time.Time{}, false
	}
	if asked != 0 && d.applied != 0 && d.applied < asked {
		now := time.Now().UnixNano()
		if d.applied > now && asked-d.applied <= (asked-now)/64 {
			return time.Time{}, false
		}
	}
	if asked == 0 {
		return time.Time{}, true
	}
	return time.Unix(0, asked), true
}

func (d *lazyDeadline) put(t time.Time) { d.applied = unixNano(t) }

func (c *rawConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *rawConn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

func (c *rawConn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

func (c *rawConn) Read(p []byte) (int, error) {
	if err := c.putDeadline(&c.rd); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// putDeadline puts d (c.rd or c.wd) on the socket if it is due.
func (c *rawConn) putDeadline(d *lazyDeadline) error {
	t, ok := d.due()
	if !ok {
		return nil
	}
	var err error
	if d == &c.wd {
		err = c.Conn.SetWriteDeadline(t)
	} else {
		err = c.Conn.SetReadDeadline(t)
	}
	if err != nil {
		return err
	}
	d.put(t)
	c.l.deadlines.Add(1)
	return nil
}

func (c *rawConn) remoteAddr() string {
	if c.remote == "" {
		c.remote = c.Conn.RemoteAddr().String()
	}
	return c.remote
}

func (c *rawConn) Write(p []byte) (int, error) {
	if err := c.putDeadline(&c.wd); err != nil {
		return 0, err
	}
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

// fields is the map for the fields of c's next request, empty; nil c
// has none (request makes one).
func (c *rawConn) fields() http.Header {
	if c == nil {
		return nil
	}
	if c.header == nil {
		c.header = make(http.Header)
	} else {
		clear(c.header)
	}
	return c.header
}

// answerWriter is the writer of c's next answer, its fields empty; nil
// c gets a new one.
func (c *rawConn) answerWriter(ctx *fasthttp.RequestCtx) *answerWriter {
	if c == nil {
		return &answerWriter{ctx: ctx, h: make(http.Header)}
	}
	h := c.answer.h
	if h == nil {
		h = make(http.Header)
	} else {
		clear(h)
	}
	c.answer = answerWriter{ctx: ctx, raw: c, h: h}
	return &c.answer
}

// context is the context of c's requests: its values, never done.
func (c *rawConn) context() context.Context {
	if c.base == nil {
		c.base = proxy.ConnContext(context.Background(), c.outer)
	}
	return c.base
}

func (c *rawConn) Close() error {
	if c.l.gone != nil {
		c.l.gone.remove(c)
	}
	c.l.conns.Delete(c.outer)
	return c.Conn.Close()
}

type outerListener struct {
	net.Listener
	raw *rawListener
}

func (l *outerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.raw.last.outer = c
		l.raw.conns.Store(c, l.raw.last)
	}
	return c, err
}

// prefaceListener hands out the connections of a TCP listener that do
// not open with HTTP/2's preface; those that do go to h2 (net/http's
// HTTP/2 server, h2c by prior knowledge). Each connection's first bytes
// are read on a goroutine of its own, within headReadTimeout, and given
// again to whichever server reads it.
type prefaceListener struct {
	net.Listener
	g    *routine.Group
	h1   chan net.Conn
	h2   *connQueue
	errc chan error
	done chan struct{}
	once sync.Once
}

// http2Preface is what an HTTP/2 connection opens with (RFC 9113 §3.4).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func newPrefaceListener(ln net.Listener, g *routine.Group) *prefaceListener {
	l := &prefaceListener{Listener: ln, g: g, h1: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	l.h2 = &connQueue{addr: ln.Addr(), c: make(chan net.Conn), done: l.done}
	g.Go("h2c preface accept", l.accept)
	return l
}

func (l *prefaceListener) accept() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		l.g.Go("h2c preface read", func() { l.sort(c) })
	}
}

// sort reads c's first bytes until they differ from HTTP/2's preface or
// are the whole of it.
func (l *prefaceListener) sort(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(headReadTimeout))
	buf := make([]byte, 0, len(http2Preface))
	for len(buf) < len(http2Preface) && string(buf) == http2Preface[:len(buf)] {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &prefacedConn{Conn: c, first: buf}
	to := l.h1
	if string(buf) == http2Preface {
		to = l.h2.c
	} else if len(buf) == 0 {
		_ = c.Close() // nothing sent within the time a head may take
		return
	}
	select {
	case to <- pc:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *prefaceListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.h1:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *prefaceListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// connQueue is a listener whose connections another hands it.
type connQueue struct {
	addr net.Addr
	c    chan net.Conn
	done chan struct{}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.c:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error   { return nil } // closed with the prefaceListener
func (q *connQueue) Addr() net.Addr { return q.addr }

// prefacedConn is a connection whose first bytes were read already: they
// are read again first.
type prefacedConn struct {
	net.Conn
	first []byte
}

func (c *prefacedConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// SyscallConn is the socket's, for the sweep.
func (c *prefacedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("a %T has no socket", c.Conn)
	}
	return sc.SyscallConn()
}

// bufio writers for answers written on the connection, kept between them.
var directWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

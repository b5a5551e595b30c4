// Package h1 is Seawall's HTTP/1.1 client to upstreams: an
// http.RoundTripper that writes the request and reads the answer on the
// calling goroutine, over pooled keep-alive connections.
//
// net/http's Transport gives each connection a reader and a writer
// goroutine, and a call hands its request to one and its answer back from
// the other: two wake-ups per call, each a wait in the scheduler's queue
// behind whatever else is runnable. On one core that is where a proxy's
// tail latency grows (docs/adr/0004-upstream-client.md). This client does
// the same work in one goroutine. The wire format is net/http's own:
// requests are written with (*http.Request).Write and answers parsed with
// http.ReadResponse, so framing (Content-Length, chunked, trailers, 1xx)
// is exactly as strict as net/http's; what is here is the connection
// handling around them.
//
// What it does not do: HTTP/2 (it offers only http/1.1 in ALPN), proxies
// from the environment, transparent gzip (the app's own Accept-Encoding is
// sent as it is), and waiting for 100 Continue (the body is sent at once,
// which RFC 9110 §10.1.1 allows).
package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Observer hears the steps of a call made with Transport.Call, on the
// calling goroutine.
type Observer interface {
	GotConn(reused bool)                        // a connection was taken, again if a stale one is replaced
	WroteRequest(err error)                     // the request was written, or writing it failed
	Interim(code int, header http.Header) error // a 1xx answer; an error fails the call
}

// ErrHeaderTimeout fails a call whose answer's header did not arrive
// within the header timeout given to Transport.Call.
var ErrHeaderTimeout = errors.New("h1: no response header within the timeout")

// Transport is the client. The zero value is not usable; see New.
type Transport struct {
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	tls            *tls.Config
	handshake      time.Duration
	maxIdlePerHost int
	idleTimeout    time.Duration
	maxHeaderBytes int64
	mu             sync.Mutex
	idle           map[poolKey][]*conn // most recent last
	peeks          atomic.Int64        // system calls made by alive, for the tests
}

// poolKey names an upstream server: its scheme and host:port.
type poolKey struct{ scheme, addr string }

// Options configures New; zero fields take the defaults given.
type Options struct {
	Connect        time.Duration // dial and TLS handshake; default 2s
	TLS            *tls.Config   // for https; nil: the system's roots
	MaxIdlePerHost int           // default 256
	IdleTimeout    time.Duration // an idle connection older is closed; default 90s
	MaxHeaderBytes int64         // an answer's header larger fails the call; default 1 MiB
}

// New returns a Transport.
func New(o Options) *Transport {
	if o.Connect <= 0 {
		o.Connect = 2 * time.Second
	}
	d := &net.Dialer{Timeout: o.Connect, KeepAlive: 30 * time.Second}
	t := &Transport{
		dial:           d.DialContext,
		tls:            o.TLS,
		handshake:      o.Connect,
		maxIdlePerHost: o.MaxIdlePerHost,
		idleTimeout:    o.IdleTimeout,
		maxHeaderBytes: o.MaxHeaderBytes,
		idle:           map[poolKey][]*conn{},
	}
	if t.maxIdlePerHost <= 0 {
		t.maxIdlePerHost = 256
	}
	if t.idleTimeout <= 0 {
		t.idleTimeout = 90 * time.Second
	}
	if t.maxHeaderBytes <= 0 {
		t.maxHeaderBytes = 1 << 20
	}
	return t
}

// conn is one pooled connection.
type conn struct {
	key    poolKey
	raw    net.Conn         // the TCP connection, under tls if any
	rc     syscall.RawConn  // raw's, for alive; nil: not a socket
	peeked bool             // alive's last finding
	peek   func(fd uintptr) // peekFD, as a value made once rather than at each reuse
	// deadline is what was set on raw last (read and write alike, but
	// for interrupt's): a pooled connection keeps its last call's, which
	// the next call replaces, rather than have it cleared at each return
	// to the pool, a change to the runtime's timers a call.
	deadline time.Time
	// interrupt fails the connection's pending and future reads and
	// writes; a value made once, for the context's hook.
	interrupt func()
	c         net.Conn // what is read and written: raw, or the TLS client
	tls       *tls.ConnectionState
	lr        limitReader
	cw        countWriter
	br        *bufio.Reader
	bw        *bufio.Writer
	idleAt    time.Time
	reused    bool
}

// limitReader fails reads past n bytes while n > 0: it bounds an
// answer's header.
type limitReader struct {
	r   io.Reader
	n   int64 // 0: no limit
	hit bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > 0 {
		if l.n == 1 {
			l.hit = true
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > l.n-1 {
			p = p[:l.n-1]
		}
	}
	n, err := l.r.Read(p)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}

// countWriter counts the bytes that reached the connection.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// max1xx bounds the interim answers before the final one, as net/http does.
const max1xx = 5

var (
	errHeaderTooLarge = errors.New("h1: the upstream's response header is too large")
)

// RoundTrip sends req and returns the answer; its body must be read to the
// end or closed, after which the connection is reused when it can be. An
// httptrace.ClientTrace in req's context hears GotConn, WroteRequest and
// Got1xxResponse.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var o Observer
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil {
		o = traceObserver{trace}
	}
	return t.Call(req, 0, o)
}

// Call is RoundTrip with its bound and its observer given directly rather
// than through the context: headerTimeout (0: none) bounds the call from
// now until the answer's header, dialling and writing the request
// included, and fails it with ErrHeaderTimeout; o (nil: none) hears its
// steps. The context still ends the call at any time, its body's reads
// included.
func (t *Transport) Call(req *http.Request, headerTimeout time.Duration, o Observer) (*http.Response, error) {
	if req.URL == nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		closeBody(req)
		return nil, fmt.Errorf("h1: unsupported URL %v", req.URL)
	}
	if o == nil {
		o = noObserver{}
	}
	ctx := req.Context()
	var end time.Time
	if headerTimeout > 0 {
		end = time.Now().Add(headerTimeout)
	}
	for try := 0; ; try++ {
		// A pooled connection is peeked at before a call that could not be
		// sent again; a replayable one goes at once, and if the server had
		// closed that connection, the call is sent again below, on one
		// that is peeked at: one system call less a call on the hot path.
		c, err := t.get(ctx, req, end, try > 0 || !replayable(req))
		if err != nil {
			closeBody(req)
			return nil, timedOut(ctx, end, err)
		}
		resp, sent, err := t.exchange(ctx, c, req, end, o)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the server closed while it idled fails
		// before any answer (not checked before a replayable call, and a
		// checked one can close just after). The request is sent again,
		// on another connection, only when nothing of it reached the
		// connection or it is replayable.
		hasBody := req.Body != nil && req.Body != http.NoBody
		if try == 0 && c.reused && ctx.Err() == nil && !errors.Is(err, errHeaderTooLarge) && !errors.Is(err, ErrHeaderTimeout) &&
			(replayable(req) || (!sent && (!hasBody || req.GetBody != nil))) {
			if hasBody { // the first try read it
				if req.GetBody == nil {
					return nil, err
				}
				body, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				req = req.Clone(ctx)
				req.Body = body
			}
			continue
		}
		closeBody(req)
		return nil, err
	}
}

// timedOut names err ErrHeaderTimeout when the call failed because its
// header deadline, end, passed (and not because its context ended).
func timedOut(ctx context.Context, end time.Time, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if !end.IsZero() && !time.Now().Before(end) {
		return fmt.Errorf("%w: %w", ErrHeaderTimeout, err)
	}
	return err
}

// noObserver hears nothing.
type noObserver struct{}

func (noObserver) GotConn(bool)                   {}
func (noObserver) WroteRequest(error)             {}
func (noObserver) Interim(int, http.Header) error { return nil }

// traceObserver relays a call's steps to an httptrace.ClientTrace.
type traceObserver struct{ t *httptrace.ClientTrace }

func (o traceObserver) GotConn(reused bool) {
	if o.t.GotConn != nil {
		o.t.GotConn(httptrace.GotConnInfo{Reused: reused})
	}
}

func (o traceObserver) WroteRequest(err error) {
	if o.t.WroteRequest != nil {
		o.t.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
}

func (o traceObserver) Interim(code int, h http.Header) error {
	if o.t.Got1xxResponse != nil {
		return o.t.Got1xxResponse(code, textproto.MIMEHeader(h))
	}
	return nil
}

// replayable is net/http's rule: an idempotent method, or an
// Idempotency-Key, with a body that can be had again.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// exchange writes req on c and reads the answer's header, by end if it is
// not zero. sent says whether any of the request may have reached the
// server.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request, end time.Time, o Observer) (*http.Response, bool, error) {
	watch, bound := watched(ctx)
	headEnd := earliest(end, bound)
	c.setDeadline(headEnd) // before the context's hook, which must win
	// The context's end (the overall timeout, the app gone) interrupts any
	// read or write on the connection, through the body's reads too.
	stop := afterFunc(watch, c.interrupt)
	o.GotConn(c.reused)
	before := c.cw.n
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		_ = c.c.Close()
		return nil, c.cw.n > before, timedOut(ctx, end, err)
	}
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	o.WroteRequest(err)
	if err != nil {
		return fail(err)
	}
	for interim := 0; ; interim++ {
		c.lr.n = t.maxHeaderBytes + 1
		resp, err := http.ReadResponse(c.br, req)
		c.lr.n = 0
		if err != nil {
			if c.lr.hit {
				err = errHeaderTooLarge
			}
			return fail(err)
		}
		if resp.StatusCode < 100 || resp.StatusCode > 599 {
			return fail(fmt.Errorf("h1: the upstream answered status %d", resp.StatusCode))
		}
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			if interim == max1xx {
				return fail(errors.New("h1: too many 1xx answers from the upstream"))
			}
			if err := o.Interim(resp.StatusCode, resp.Header); err != nil {
				return fail(err)
			}
			continue
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("h1: the upstream switched protocols, which Seawall does not relay"))
		}
		if !headEnd.Equal(bound) {
			// The header is in: the body is bounded by the context alone
			// (and its deadline, when the connection keeps it). Moving the
			// deadline could undo the context's hook, so the hook's work is
			// done again if the context has ended.
			c.setDeadline(bound)
			if ctx.Err() != nil {
				c.interrupt()
			}
		}
		resp.TLS = c.tls
		reusable := !resp.Close && !req.Close
		resp.Body = &body{rc: resp.Body, t: t, c: c, stop: stop, reusable: reusable, ctx: ctx}
		return resp, true, nil
	}
}

// afterFunc is context.AfterFunc(ctx, f), but a context with an
// AfterFunc method of its own is asked directly, as the context package
// asks one for a child: the fasthttp engine's request context then
// calls f (a connection's interrupt: quick, safe from any goroutine) as
// it ends, with no context of the package's and no goroutine made.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(interface{ AfterFunc(func()) func() bool }); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}

// boundedContext is a context that keeps its deadline without a timer
// until asked for Done (clock.Bounded): the connection's deadline keeps
// it instead, and only Unbounded, the context that ends it early, is
// watched.
type boundedContext interface {
	context.Context
	Unbounded() context.Context
}

// watched returns the context whose end must interrupt a call under ctx,
// and the deadline the connection keeps for it (zero: none).
func watched(ctx context.Context) (context.Context, time.Time) {
	if b, ok := ctx.(boundedContext); ok {
		d, _ := b.Deadline()
		return b.Unbounded(), d
	}
	return ctx, time.Time{}
}

// earliest is the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// body is an answer's body; at its end the connection goes back to the
// pool, and a body closed early closes its connection.
type body struct {
	mu       sync.Mutex
	rc       io.ReadCloser
	t        *Transport
	c        *conn
	stop     func() bool
	ctx      context.Context
	reusable bool
	done     bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.finish(true)
	} else if err != nil {
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		b.finish(false)
	}
	return n, err
}

func (b *body) Close() error {
	b.finish(false)
	return nil
}

// finish releases the connection once: to the pool when the body was read
// to its end and the context did not interrupt it, else closed.
func (b *body) finish(atEOF bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	notFired := b.stop()
	if atEOF && notFired && b.reusable {
		b.t.put(b.c)
		return
	}
	_ = b.c.c.Close()
}

// key is the pool's key for a request's server; its addr is what is dialled.
func key(req *http.Request) poolKey {
	host := req.URL.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(req.URL.Hostname(), port)
	}
	return poolKey{req.URL.Scheme, host}
}

// get takes an idle connection to req's server, peeked at first when
// check is set, or dials one by end (zero: the context's deadline alone).
func (t *Transport) get(ctx context.Context, req *http.Request, end time.Time, check bool) (*conn, error) {
	k := key(req)
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[k]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		t.idle[k] = list[:len(list)-1]
		t.mu.Unlock()
		if now.Sub(c.idleAt) > t.idleTimeout || (check && !t.alive(c)) {
			_ = c.c.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	watch, bound := watched(ctx)
	if end = earliest(end, bound); !end.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(watch, end)
		defer cancel()
	}
	return t.dialConn(ctx, req, k)
}

func (t *Transport) dialConn(ctx context.Context, req *http.Request, k poolKey) (*conn, error) {
	raw, err := t.dial(ctx, "tcp", k.addr)
	if err != nil {
		return nil, err
	}
	c := &conn{key: k, raw: raw, c: raw}
	c.interrupt = func() { _ = raw.SetDeadline(time.Unix(1, 0)) }
	if sc, ok := raw.(syscall.Conn); ok {
		if c.rc, err = sc.SyscallConn(); err != nil {
			_ = raw.Close()
			return nil, err
		}
		c.peek = c.peekFD
	}
	if req.URL.Scheme == "https" {
		cfg := &tls.Config{} //nolint:gosec // MinVersion comes from the config given, TLS 1.2 by Seawall's default
		if t.tls != nil {
			cfg = t.tls.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.handshake)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = raw.Close()
			return nil, err
		}
		st := tc.ConnectionState()
		c.c, c.tls = tc, &st
	}
	c.lr.r, c.cw.w = c.c, c.c
	c.br = bufio.NewReaderSize(&c.lr, 16<<10)
	c.bw = bufio.NewWriterSize(&c.cw, 16<<10)
	return c, nil
}

// put returns c to the pool.
func (t *Transport) put(c *conn) {
	if c.br.Buffered() > 0 { // the server sent more than its answer
		_ = c.c.Close()
		return
	}
	c.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle[c.key]) >= t.maxIdlePerHost {
		_ = c.c.Close()
		return
	}
	t.idle[c.key] = append(t.idle[c.key], c)
}

// CloseIdleConnections closes the pooled connections; calls under way
// keep theirs.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[poolKey][]*conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			_ = c.c.Close()
		}
	}
}

// alive says whether an idle connection is still open: a peek that finds
// neither data nor the end of the stream. One system call; it keeps a
// request that cannot be replayed off a connection the server has closed,
// which net/http learns from its reader goroutine.
func (t *Transport) alive(c *conn) bool {
	if c.rc == nil {
		return true
	}
	t.peeks.Add(1)
	c.peeked = false
	// Control, not Read: the deadline of the call before, kept on the
	// connection, may have passed, which would fail a Read at once.
	_ = c.rc.Control(c.peek)
	return c.peeked
}

// setDeadline sets raw's read and write deadline to t, zero meaning
// none, unless it is already.
func (c *conn) setDeadline(t time.Time) {
	if t.Equal(c.deadline) {
		return
	}
	_ = c.raw.SetDeadline(t)
	c.deadline = t
}

// peekFD is alive's look at the socket; it never waits.
func (c *conn) peekFD(fd uintptr) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peeked = n < 0 && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
}

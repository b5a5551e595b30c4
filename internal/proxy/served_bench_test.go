package proxy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// pipelinedConn is a client connection held in memory: it gives n copies
// of one request, one to a read, then EOF, and keeps the first bytes
// written to it. Served by net/http, it measures a request's work in Go,
// the server's and the handler's, without the kernel's share, which on
// loopback is most of a request and varies from run to run.
type pipelinedConn struct {
	req       []byte
	n, off    int
	mu        sync.Mutex
	head      bytes.Buffer // the first answers, for checking
	written   int64
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *pipelinedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return 0, io.EOF
	}
	k := copy(p, c.req[c.off:])
	if c.off += k; c.off == len(c.req) {
		c.off, c.n = 0, c.n-1
	}
	return k, nil
}

func (c *pipelinedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head.Len() < 8<<10 {
		c.head.Write(p)
	}
	c.written += int64(len(p))
	return len(p), nil
}

func (c *pipelinedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *pipelinedConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
}
func (c *pipelinedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *pipelinedConn) SetDeadline(time.Time) error      { return nil }
func (c *pipelinedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipelinedConn) SetWriteDeadline(time.Time) error { return nil }

// oneConnListener accepts one connection, then waits to be closed.
type oneConnListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
}

// serveInMemory has net/http's server answer n requests for target from h
// on one in-memory connection, and returns what it wrote first and in all.
func serveInMemory(tb testing.TB, h http.Handler, target string, n int) (head []byte, written int64) {
	c := &pipelinedConn{req: []byte("GET " + target + " HTTP/1.1\r\nHost: seawall\r\nUser-Agent: bench\r\n\r\n"), n: n, closed: make(chan struct{})}
	l := &oneConnListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
	l.conns <- c
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	<-c.closed
	_ = srv.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.head.Bytes()), c.written
}

// benchServed measures net/http's server and h answering target, in Go
// alone, and checks that every answer came with want in its head.
func benchServed(b *testing.B, h http.Handler, target, want string) {
	if head, _ := serveInMemory(b, h, target, 2); !bytes.Contains(head, []byte(want)) {
		b.Fatalf("the answer lacks %q:\n%s", want, head)
	}
	_, one := serveInMemory(b, h, target, 1)
	b.ReportAllocs()
	b.ResetTimer()
	_, written := serveInMemory(b, h, target, b.N)
	b.StopTimer()
	if written < int64(b.N)*one*9/10 {
		b.Fatalf("%d requests wrote %d bytes, one alone %d", b.N, written, one)
	}
}

// BenchmarkServedCacheHit is a cache hit as the harness's (b) 1 KiB has
// it, served by net/http from memory: what Seawall and its server do in
// Go for a hit, the kernel's part left out.
func BenchmarkServedCacheHit(b *testing.B) {
	benchServed(b, cacheSeawall(b), "/cache/1k", "Cache-Status: Seawall; hit")
}

// BenchmarkServedStatic is the harness's bare server (proto-static)
// served the same way: the least net/http does for such an answer.
func BenchmarkServedStatic(b *testing.B) {
	body := make([]byte, 1024)
	benchServed(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Cache-Control"] = []string{"public, max-age=3600"}
		h["Age"] = []string{"1"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		_, _ = w.Write(body)
	}), "/", "Content-Length: 1024")
}

package proxy

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
)

// net/http ignores Transfer-Encoding on an HTTP/1.0 request and deletes
// the header before a handler sees it: the body is then taken as empty,
// and a chunked body sent after the head is silently dropped (or, on a
// kept-alive connection, read as the next request). RFC 9112 §6.1 says
// such framing is faulty. Listener lets the proxy see the head as sent:
// it reads the first request head of each connection on the way through
// and remembers whether it was HTTP/1.0 with a Transfer-Encoding. And
// every HTTP/1.0 request's connection is closed after its answer, so no
// leftover can become a request.

// maxHeadScan bounds how much of a head is read for its framing; the
// server refuses heads larger than this anyway (MaxHeaderBytes).
const maxHeadScan = 64 << 10

// Listener wraps ln so that ConnContext can tell the proxy about request
// framing that net/http hides. Servers over it set ConnContext.
func Listener(ln net.Listener) net.Listener { return framingListener{ln} }

// ConnContext is the http.Server.ConnContext of servers over Listener.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

type framingKey struct{}

type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingConn scans the first request head read from its connection.
type framingConn struct {
	net.Conn
	head   []byte // the first head so far, until done
	done   bool   // only the reading goroutine touches head and done
	faulty atomic.Bool
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done && n > 0 {
		c.head = append(c.head, p[:n]...)
		if end, ok := headEnd(c.head); ok || len(c.head) >= maxHeadScan {
			if ok {
				c.faulty.Store(http10WithTE(c.head[:end]))
			}
			c.done, c.head = true, nil
		}
	}
	return n, err
}

// FaultyFraming reports whether the first head read on the connection
// of ctx (ConnContext's) was HTTP/1.0 with a Transfer-Encoding.
func FaultyFraming(ctx context.Context) bool {
	fc, ok := ctx.Value(framingKey{}).(*framingConn)
	return ok && fc.faulty.Load()
}

// headEnd finds the end of a request head: the first empty line after
// the request line (empty lines before it are skipped, RFC 9112 §2.2).
func headEnd(b []byte) (int, bool) {
	start := len(b) - len(bytes.TrimLeft(b, "\r\n"))
	for i := start; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		rest := b[i+1:]
		if bytes.HasPrefix(rest, []byte("\n")) {
			return i + 2, true
		}
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return i + 3, true
		}
	}
	return 0, false
}

// http10WithTE reports whether a whole request head is an HTTP/1.0
// request carrying a Transfer-Encoding field.
func http10WithTE(head []byte) bool {
	lines := bytes.Split(bytes.TrimLeft(head, "\r\n"), []byte("\n"))
	if len(lines) == 0 || !bytes.HasSuffix(bytes.TrimRight(lines[0], "\r"), []byte(" HTTP/1.0")) {
		return false
	}
	for _, l := range lines[1:] {
		name, _, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Transfer-Encoding")) {
			return true
		}
	}
	return false
}

package vendortest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Wire is a raw TCP listener that misbehaves on the wire, counting the
// connections it took and the requests it read whole.
type Wire struct {
	URL         string
	connections atomic.Int64
	requests    atomic.Int64
}

// Connections is how many connections the listener accepted.
func (w *Wire) Connections() int { return int(w.connections.Load()) }

// Requests is how many whole HTTP requests it read.
func (w *Wire) Requests() int { return int(w.requests.Load()) }

// ResetAfterRequest reads each request whole, body included, as a vendor
// that acts on it would, then resets the connection without answering.
func ResetAfterRequest(t testing.TB) *Wire {
	return serve(t, "http", func(w *Wire, c *net.TCPConn) { w.readRequest(c) })
}

// readRequest reads one request whole, body included, as a vendor that
// acts on it would, and counts it; false when none came whole.
func (w *Wire) readRequest(c *net.TCPConn) bool {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return false
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return false
	}
	w.requests.Add(1)
	return true
}

// CutAnswer reads each request whole, answers with head (a status line
// and fields, without the blank line) and then the first bytes of body,
// and resets the connection: a vendor whose answer fails part way, after
// it may have acted on the request.
func CutAnswer(t testing.TB, head, body string) *Wire {
	return serve(t, "http", func(w *Wire, c *net.TCPConn) {
		if !w.readRequest(c) {
			return
		}
		_, _ = io.WriteString(c, head+"\r\n\r\n"+body)
		time.Sleep(20 * time.Millisecond) // the answer leaves before the reset
	})
}

// ResetDuringHandshake takes connections for an https URL, reads the
// start of the TLS handshake and resets: nothing of the request can have
// been sent.
func ResetDuringHandshake(t testing.TB) *Wire {
	return serve(t, "https", func(_ *Wire, c *net.TCPConn) {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var hello [5]byte
		_, _ = io.ReadFull(c, hello[:])
	})
}

// serve accepts connections on loopback, runs handle on each, then closes
// it with a reset (SO_LINGER 0).
func serve(t testing.TB, scheme string, handle func(*Wire, *net.TCPConn)) *Wire {
	t.Helper()
	return serveConns(t, scheme, handle, true)
}

// serveConns accepts connections on loopback and runs handle on each,
// then closes it, with a reset if reset is set.
func serveConns(t testing.TB, scheme string, handle func(*Wire, *net.TCPConn), reset bool) *Wire {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	w := &Wire{URL: scheme + "://" + l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			w.connections.Add(1)
			go func(c *net.TCPConn) {
				handle(w, c)
				if reset {
					_ = c.SetLinger(0)
				}
				_ = c.Close()
			}(c.(*net.TCPConn))
		}
	}()
	return w
}

// atomic64 hands out serial numbers.
type atomic64 struct{ n atomic.Int64 }

func (a *atomic64) next() int64 { return a.n.Add(1) + 1 }

// Recorder is a raw TCP upstream that answers every request 200 and
// keeps each request line's target exactly as it came on the wire.
type Recorder struct {
	URL     string
	mu      sync.Mutex
	targets []string // guarded by mu
}

// Targets returns the request targets received, oldest first.
func (r *Recorder) Targets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.targets...)
}

// Record starts a Recorder on loopback.
func Record(t testing.TB) *Recorder {
	rec := &Recorder{}
	w := serveConns(t, "http", func(_ *Wire, c *net.TCPConn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			_, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			target, _, _ := strings.Cut(rest, " ")
			length := 0
			for { // the header, for Content-Length
				h, err := br.ReadString('\n')
				if err != nil {
					return
				}
				h = strings.TrimRight(h, "\r\n")
				if h == "" {
					break
				}
				if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
					length, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
			if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
				return
			}
			rec.mu.Lock()
			rec.targets = append(rec.targets, target)
			rec.mu.Unlock()
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	}, false)
	rec.URL = w.URL
	return rec
}

package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/clock"
)

// scripted is a TCP server that answers each request on a connection with
// the next of its answers, as raw bytes, and can close after any of them.
type scripted struct {
	ln       net.Listener
	accepted atomic.Int32
	mu       sync.Mutex
	requests []string // request lines, in order
}

// listen starts a TCP server that hands each connection it accepts, with
// the connection's number from 1, to handle on a goroutine of its own.
func listen(t *testing.T, handle func(c net.Conn, id int)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for id := 1; ; id++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, id)
			}()
		}
	}()
	return ln
}

// serve starts a server; answer returns the bytes to send for the nth
// request of a connection and whether to close the connection after.
func serve(t *testing.T, answer func(conn, n int, req *http.Request) (string, bool)) *scripted {
	t.Helper()
	s := &scripted{}
	s.ln = listen(t, func(c net.Conn, id int) {
		s.accepted.Add(1)
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			s.mu.Lock()
			s.requests = append(s.requests, req.Method+" "+req.URL.Path)
			s.mu.Unlock()
			out, closeAfter := answer(id, n, req)
			if _, err := io.WriteString(c, out); err != nil || closeAfter {
				return
			}
		}
	})
	return s
}

func (s *scripted) url(path string) string { return "http://" + s.ln.Addr().String() + path }

func (s *scripted) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func get(t *testing.T, tr *Transport, method, url string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return tr.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	_ = resp.Body.Close()
	return string(b)
}

// Calls one after another share one connection.
func TestReusesTheConnection(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) { return ok, false })
	tr := New(Options{})
	for i := range 5 {
		resp, err := get(t, tr, "GET", s.url("/a"), nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Fatalf("call %d: body %q", i, got)
		}
	}
	if n := s.accepted.Load(); n != 1 {
		t.Fatalf("5 calls opened %d connections, want 1", n)
	}
}

// A server that closes a kept-alive connection after its answer: the
// next call, a POST that could not be sent twice, goes on a new
// connection and reaches the server once.
func TestAClosedIdleConnectionIsNotUsed(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) { return ok, true })
	tr := New(Options{})
	resp, err := get(t, tr, "GET", s.url("/first"), nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	time.Sleep(50 * time.Millisecond) // the server's close arrives
	resp, err = get(t, tr, "POST", s.url("/pay"), strings.NewReader("once"))
	if err != nil {
		t.Fatalf("POST after the server closed the idle connection: %v", err)
	}
	readAll(t, resp)
	if got := s.seen(); len(got) != 2 || got[1] != "POST /pay" {
		t.Fatalf("server saw %v, want the GET and one POST", got)
	}
}

// A call that can be sent again takes a pooled connection without the
// system call that peeks at it; one that cannot is peeked at.
func TestOnlyCallsThatCannotBeSentAgainPeek(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) { return ok, false })
	tr := New(Options{})
	call := func(method string, body io.Reader, header string) {
		t.Helper()
		req, err := http.NewRequest(method, s.url("/a"), body)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(header, "k-1")
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	for range 4 {
		call("GET", nil, "")
	}
	call("POST", strings.NewReader("x"), "Idempotency-Key") // replayable: its body can be had again, and it has a key
	if n := tr.peeks.Load(); n != 0 {
		t.Fatalf("four reuses by replayable calls peeked %d times, want 0", n)
	}
	call("POST", strings.NewReader("once"), "")
	if n := tr.peeks.Load(); n != 1 {
		t.Fatalf("a POST on a pooled connection peeked %d times, want 1", n)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Fatalf("the calls opened %d connections, want 1", n)
	}
}

// Every pooled connection was closed by the server: a GET, not peeked at,
// fails on the first, and is sent again on a connection that is checked,
// so the other closed ones are passed over, not tried in turn.
func TestAReplayableCallPassesOverClosedConnections(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) { return ok, true })
	tr := New(Options{})
	// Three connections in the pool: three calls whose answers are all
	// in before any body is read.
	var resps []*http.Response
	for i := range 3 {
		resp, err := get(t, tr, "GET", s.url("/warm"), nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		resps = append(resps, resp)
	}
	for _, resp := range resps {
		readAll(t, resp)
	}
	time.Sleep(50 * time.Millisecond) // the server's closes arrive
	resp, err := get(t, tr, "GET", s.url("/again"), nil)
	if err != nil {
		t.Fatalf("a GET with only closed connections in the pool: %v", err)
	}
	readAll(t, resp)
	if n := s.accepted.Load(); n != 4 {
		t.Fatalf("%d connections accepted, want the three closed ones and one new", n)
	}
	if got := strings.Count(strings.Join(s.seen(), ","), "GET /again"); got != 1 {
		t.Fatalf("the server saw the GET %d times, want once", got)
	}
}

// An answer that announces keep-alive but the server drops the connection
// anyway: a GET is sent again on a new connection; a POST is not.
func TestReplayOnlyWhatIsReplayable(t *testing.T) {
	// Every connection's second request gets no answer.
	s := serve(t, func(_, n int, _ *http.Request) (string, bool) {
		if n == 1 {
			return "", true
		}
		return ok, false
	})
	tr := New(Options{})
	call := func(method, path string) error {
		resp, err := get(t, tr, method, s.url(path), nil)
		if err == nil {
			readAll(t, resp)
		}
		return err
	}
	if err := call("GET", "/warm"); err != nil {
		t.Fatal(err)
	}
	if err := call("GET", "/again"); err != nil {
		t.Fatalf("a GET on a connection dropped under it: %v, want it sent again", err)
	}
	if err := call("POST", "/pay"); err == nil {
		t.Fatal("a POST on a connection dropped under it succeeded; it must not be sent twice")
	}
	if got := strings.Count(strings.Join(s.seen(), ","), "POST /pay"); got != 1 {
		t.Fatalf("the POST reached the server %d times, want 1", got)
	}
}

// The context's end stops a call waiting for headers and one reading the
// body, with the context's error.
func TestContextEndsTheCall(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := serve(t, func(_, _ int, req *http.Request) (string, bool) {
		if req.URL.Path == "/slow-body" {
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", false
		}
		<-release
		return ok, false
	})
	tr := New(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/hang"), nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for headers past the deadline: %v, want DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", s.url("/slow-body"), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading a body when the context ends: %v, want Canceled", err)
	}
}

// doneSpy is a clock.Bounded that tells whether anything asked for Done,
// which would start the timer the connection's deadline stands in for.
type doneSpy struct {
	*clock.Bounded
	asked atomic.Bool
}

func (s *doneSpy) Done() <-chan struct{} {
	s.asked.Store(true)
	return s.Bounded.Done()
}

// Under a clock.Bounded context the connection keeps the deadline: it
// ends a wait for the header and a body's reads with DeadlineExceeded,
// the parent's end still interrupts at once, a pooled connection does not
// keep the deadline for its next call, and the call never asks for Done.
func TestBoundedContextEndsTheCall(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := serve(t, func(_, _ int, req *http.Request) (string, bool) {
		switch req.URL.Path {
		case "/slow-body":
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", false
		case "/ok":
			return ok, false
		}
		<-release
		return ok, false
	})
	tr := New(Options{})
	call := func(parent context.Context, d time.Duration, path string) (*doneSpy, *http.Response, error) {
		spy := &doneSpy{Bounded: clock.WithDeadline(parent, time.Now().Add(d))}
		t.Cleanup(spy.Stop)
		req, _ := http.NewRequestWithContext(spy, "GET", s.url(path), nil)
		resp, err := tr.Call(req, time.Hour, nil)
		return spy, resp, err
	}
	spy, _, err := call(context.Background(), 100*time.Millisecond, "/hang")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for the header past the deadline: %v, want DeadlineExceeded", err)
	}
	spies := []*doneSpy{spy}

	spy, resp, err := call(context.Background(), 100*time.Millisecond, "/slow-body")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reading a body past the deadline: %v, want DeadlineExceeded", err)
	}
	spies = append(spies, spy)

	parent, cancel := context.WithCancel(context.Background())
	spy, resp, err = call(parent, time.Hour, "/slow-body")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading a body when the parent ends: %v, want Canceled", err)
	}
	spies = append(spies, spy)

	spy, resp, err = call(context.Background(), 150*time.Millisecond, "/ok")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Fatalf("body %q", got)
	}
	spies = append(spies, spy)
	time.Sleep(300 * time.Millisecond) // past the last call's deadline
	req, _ := http.NewRequest("GET", s.url("/ok"), nil)
	resp, err = tr.Call(req, 0, nil)
	if err != nil {
		t.Fatalf("a pooled connection kept a finished call's deadline: %v", err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Fatalf("body %q", got)
	}
	for i, spy := range spies {
		if spy.asked.Load() {
			t.Errorf("call %d asked for Done: a timer per call again", i)
		}
	}
}

// A header timeout bounds the wait for the answer's header and not the
// body's: a late header fails the call with ErrHeaderTimeout, a body that
// comes after the timeout is read whole, and the context still ends a
// body's reads.
func TestHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ln := listen(t, func(c net.Conn, _ int) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/late-header":
				<-release
				_, _ = io.WriteString(c, ok)
			case "/late-body":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
				time.Sleep(300 * time.Millisecond)
				_, _ = io.WriteString(c, "ok")
			case "/hang-body":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
				<-release
				return
			}
		}
	})
	url := "http://" + ln.Addr().String()
	tr := New(Options{})
	req, _ := http.NewRequest("GET", url+"/late-header", nil)
	if _, err := tr.Call(req, 100*time.Millisecond, nil); !errors.Is(err, ErrHeaderTimeout) {
		t.Fatalf("a late header: %v, want ErrHeaderTimeout", err)
	}
	for i := range 2 { // the second on the pooled connection
		req, _ = http.NewRequest("GET", url+"/late-body", nil)
		resp, err := tr.Call(req, 100*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if body := readAll(t, resp); body != "ok" {
			t.Fatalf("call %d: body %q", i, body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", url+"/hang-body", nil)
	resp, err := tr.Call(req, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading a body when the context ends: %v, want Canceled", err)
	}
}

// 1xx answers reach the trace's Got1xxResponse; the final answer follows.
func TestInterimAnswers(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) {
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + ok, false
	})
	tr := New(Options{})
	var got []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, http.StatusText(code)+" "+h.Get("Link"))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/"), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("final answer %d %q", resp.StatusCode, body)
	}
	if len(got) != 1 || got[0] != "Early Hints </a.css>; rel=preload" {
		t.Fatalf("interim answers %v", got)
	}
}

// The vendor's answer is framed as strictly as net/http frames it: a
// header past the limit, Content-Length beside chunked, and two lengths
// that differ all fail the call, and the connection is not reused.
func TestHostileAnswersFail(t *testing.T) {
	for name, answer := range map[string]string{
		"oversize header": "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 4096) + "\r\nContent-Length: 2\r\n\r\nok",
		"two lengths":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"bad length":      "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
		"bad status line": "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
		"header no colon": "HTTP/1.1 200 OK\r\nX-Bad\r\nContent-Length: 2\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			s := serve(t, func(_, _ int, _ *http.Request) (string, bool) { return answer, false })
			tr := New(Options{MaxHeaderBytes: 1024})
			resp, err := get(t, tr, "GET", s.url("/"), nil)
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("answer %q accepted", answer)
			}
		})
	}
	// Chunked and a length together: the length is ignored and not
	// passed on (RFC 9112 §6.3), as net/http does.
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false
	})
	resp, err := get(t, New(Options{}), "GET", s.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "ok" || resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("chunked with a length: body %q, length %d, header %v", body, resp.ContentLength, resp.Header)
	}
}

// Trailers arrive in resp.Trailer once the body is read.
func TestTrailers(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 42\r\n\r\n", false
	})
	resp, err := get(t, New(Options{}), "GET", s.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "ok" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("body %q, trailer %v", body, resp.Trailer)
	}
}

// A body closed before its end closes its connection: the next call
// opens another.
func TestABodyClosedEarlyIsNotReused(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false
	})
	tr := New(Options{})
	resp, err := get(t, tr, "GET", s.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	resp, err = get(t, tr, "GET", s.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "0123456789" {
		t.Fatalf("body %q", body)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// HTTPS: verified against the given roots, HTTP/1.1 by ALPN, reused.
func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tr := New(Options{TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	for range 3 {
		resp, err := get(t, tr, "GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); body != "HTTP/1.1" || resp.TLS == nil {
			t.Fatalf("served as %q, TLS state %v", body, resp.TLS)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	if _, err := get(t, New(Options{}), "GET", srv.URL, nil); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

// A pooled connection keeps its last call's deadline rather than have it
// cleared on its return to the pool; once that deadline has passed, the
// connection still serves: the peek before a call that cannot be sent
// again finds it open, and a call with no deadline of its own is not cut
// by the old one.
func TestAPooledConnectionOutlivesItsLastDeadline(t *testing.T) {
	s := serve(t, func(_, _ int, _ *http.Request) (string, bool) { return ok, false })
	tr := New(Options{})
	bounded := clock.WithDeadline(context.Background(), time.Now().Add(150*time.Millisecond))
	t.Cleanup(bounded.Stop)
	req, _ := http.NewRequestWithContext(bounded, "GET", s.url("/a"), nil)
	resp, err := tr.Call(req, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	time.Sleep(300 * time.Millisecond) // past both deadlines
	resp, err = get(t, tr, "POST", s.url("/b"), strings.NewReader("once"))
	if err != nil {
		t.Fatalf("a POST after the last call's deadline: %v", err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Fatalf("body %q", got)
	}
	resp, err = get(t, tr, "GET", s.url("/c"), nil)
	if err != nil {
		t.Fatalf("a GET with no deadline after the last call's: %v", err)
	}
	readAll(t, resp)
	if n := s.accepted.Load(); n != 1 {
		t.Fatalf("the calls opened %d connections, want 1 (the peek took a passed deadline for a closed connection)", n)
	}
}

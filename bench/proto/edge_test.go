package main

// The app-facing edge's hostile-input corpus, sent to net/http's server
// (Seawall's today) and to fasthttp's (ADR 0006's candidate), each with
// Seawall's limits. Every case states what Seawall requires of the edge:
// that the request be refused, or read one way only (its body decoded,
// nothing that follows taken into it), or that the request target reach
// the handler as sent, for Seawall to judge. The cases are the requests
// of the repository's hostile-input tests (internal/proxy's framing,
// pathwire and deadline tests, internal/server's head tests).
//
// Where a server falls short, the case names the gap, and the test fails
// if a gap closes or a new one opens, so that ADR 0006's list of what
// Seawall must add in front of each stays true: go test -C bench/proto
// -run TestEdge -v prints the table.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// parsed is what a server's handler saw of one request.
type parsed struct{ method, target, body, proto, te, host string }

// edge is a server under test.
type edge struct {
	addr string
	mu   sync.Mutex
	seen []parsed
}

func (e *edge) record(p parsed) {
	e.mu.Lock()
	e.seen = append(e.seen, p)
	e.mu.Unlock()
}

func (e *edge) take() []parsed {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.seen
	e.seen = nil
	return s
}

// headTimeout is both servers' bound on reading a request's head (Seawall:
// 10 s; shorter here so that the slow-head case is quick).
const headTimeout = time.Second

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// netHTTPEdge is net/http's server with Seawall's settings.
func netHTTPEdge(t *testing.T) *edge {
	ln := listenLoopback(t)
	e := &edge{addr: ln.Addr().String()}
	srv := &http.Server{
		ReadHeaderTimeout: headTimeout,
		MaxHeaderBytes:    64 << 10,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			e.record(parsed{r.Method, r.RequestURI, string(b), r.Proto, strings.Join(r.TransferEncoding, ","), r.Host})
			_, _ = io.WriteString(w, "ok")
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return e
}

// fastEdge is fasthttp's server with the same limits: a head larger than
// 64 KiB does not fit its read buffer, and the head must arrive within
// headTimeout.
func fastEdge(t *testing.T) *edge {
	ln := listenLoopback(t)
	e := &edge{addr: ln.Addr().String()}
	srv := &fasthttp.Server{
		ReadBufferSize: 64 << 10,
		ReadTimeout:    headTimeout,
		Handler: func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Request.Header
			e.record(parsed{string(h.Method()), string(h.RequestURI()), string(ctx.PostBody()), string(h.Protocol()), string(h.Peek("Transfer-Encoding")), string(h.Host())})
			ctx.SetBodyString("ok")
		},
		Logger: quiet{},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return e
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// send writes a raw request and returns the status of each answer read, in
// order, until the connection closed.
func send(t *testing.T, addr, raw string) []int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil
	}
	_ = c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	var got []int
	for range 4 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return got
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	return got
}

const hello = "5\r\nhello\r\n0\r\n\r\n"

// edgeCase is one hostile request and Seawall's requirement of the edge.
type edgeCase struct {
	name string
	raw  string
	// want judges what the server answered and its handler saw; "" is met.
	want func(statuses []int, seen []parsed) string
	// gaps are, by server, what it does instead where it falls short.
	gaps map[string]string
}

// refused: no request reached the handler, and no 2xx was sent.
func refused(statuses []int, seen []parsed) string {
	if len(seen) > 0 {
		return fmt.Sprintf("the handler got %+v", seen)
	}
	for _, s := range statuses {
		if s < 400 {
			return fmt.Sprintf("answered %v", statuses)
		}
	}
	return ""
}

// oneWay: either refused, or the handler got bodies as listed (the
// decoded chunked body first, then any request that followed, each on
// its own), answered 200; the server may close the connection after the
// first, as RFC 9112 §6.3 says it must after a request framed two ways.
func oneWay(bodies ...string) func([]int, []parsed) string {
	return func(statuses []int, seen []parsed) string {
		if refused(statuses, seen) == "" {
			return ""
		}
		got := bodiesOf(seen)
		if len(got) == 0 || len(got) > len(bodies) || fmt.Sprint(got) != fmt.Sprint(bodies[:len(got)]) {
			return fmt.Sprintf("the handler read bodies %q, want %q or its start", got, bodies)
		}
		return ""
	}
}

// closedAfter: either refused, or the handler got only body, the rest of
// the connection left unread (RFC 9112 §6.3: a server closes the
// connection after answering a request with both Content-Length and
// Transfer-Encoding, whatever it made of it).
func closedAfter(body string) func([]int, []parsed) string {
	return func(statuses []int, seen []parsed) string {
		if refused(statuses, seen) == "" {
			return ""
		}
		if got := bodiesOf(seen); fmt.Sprint(got) != fmt.Sprint([]string{body}) {
			return fmt.Sprintf("the handler read bodies %q, want only %q and the connection closed", got, body)
		}
		return ""
	}
}

func bodiesOf(seen []parsed) []string {
	var got []string
	for _, p := range seen {
		got = append(got, p.body)
	}
	return got
}

// readAs: answered 200, and the handler saw a request whose body was body.
func readAs(body string) func([]int, []parsed) string {
	return func(statuses []int, seen []parsed) string {
		if len(seen) != 1 || seen[0].body != body || len(statuses) == 0 || statuses[0] != 200 {
			return fmt.Sprintf("answered %v, the handler saw %+v; want 200 with the body %q", statuses, seen, body)
		}
		return ""
	}
}

// targetAsSent: the handler got the request target byte for byte, for
// Seawall to resolve or refuse (proxy.resolve, normalizePath).
func targetAsSent(target string) func([]int, []parsed) string {
	return func(statuses []int, seen []parsed) string {
		if len(seen) != 1 || seen[0].target != target {
			return fmt.Sprintf("answered %v, the handler saw %+v; want the target %q as sent", statuses, seen, target)
		}
		return ""
	}
}

// http10TE: Seawall answers an HTTP/1.0 request with a Transfer-Encoding
// 400 (RFC 9112 §6.1). net/http drops the field before the handler, so
// Seawall reads the head on the connection (proxy.Listener); an edge that
// shows the handler HTTP/1.0 with the field (or refuses) lets it refuse
// without that.
func http10TE(statuses []int, seen []parsed) string {
	if refused(statuses, seen) == "" {
		return ""
	}
	if len(seen) >= 1 && seen[0].proto == "HTTP/1.0" && seen[0].te != "" {
		return ""
	}
	return fmt.Sprintf("answered %v, the handler saw %+v: the field is hidden", statuses, seen)
}

func edgeCases() []edgeCase {
	post := "POST /api/v1/x HTTP/1.1\r\nHost: s\r\n"
	lengthAndChunked := "POST /api/v1/first HTTP/1.1\r\nHost: s\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n" + hello +
		"GET /api/v1/second HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
	return []edgeCase{
		// internal/proxy TestHostileRequestFraming
		{name: "two different lengths", raw: post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", want: refused},
		{name: "a length list", raw: post + "Content-Length: 5, 6\r\n\r\nhello!", want: refused},
		{name: "a signed length", raw: post + "Content-Length: +5\r\n\r\nhello", want: refused},
		{name: "an unknown coding", raw: post + "Transfer-Encoding: xchunked\r\n\r\n" + hello, want: refused},
		{name: "chunked then identity", raw: post + "Transfer-Encoding: chunked, identity\r\n\r\n" + hello, want: refused},
		{name: "space before the colon", raw: post + "Transfer-Encoding : chunked\r\n\r\n" + hello, want: refused},
		{name: "a bad chunk size", raw: post + "Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n", want: refused},
		{name: "length and chunked, then a request", raw: lengthAndChunked, want: oneWay("hello", "")},
		{name: "length and chunked: closed after", raw: lengthAndChunked, want: closedAfter("hello"),
			gaps: map[string]string{"net/http": "the next request on the connection served (RFC 9112 §6.3 says close after answering)"}},
		{name: "a folded Transfer-Encoding", raw: "POST /api/v1/folded HTTP/1.1\r\nHost: s\r\nConnection: close\r\nTransfer-Encoding:\r\n chunked\r\n\r\n" + hello, want: readAs("hello")},
		// internal/proxy TestHTTP10WithTransferEncodingIs400
		{name: "HTTP/1.0 chunked", gaps: map[string]string{"net/http": "the field dropped before the handler: Seawall's head scan (proxy.Listener) refuses it"}, raw: "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n" + hello, want: http10TE},
		{name: "HTTP/1.0 chunked and a length", gaps: map[string]string{"net/http": "the field dropped before the handler: Seawall's head scan (proxy.Listener) refuses it"}, raw: "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\n\r\n" + hello, want: http10TE},
		{name: "HTTP/1.0 a list of codings", gaps: map[string]string{"net/http": "the field dropped before the handler: Seawall's head scan (proxy.Listener) refuses it"}, raw: "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + hello, want: http10TE},
		{name: "HTTP/1.0 bare LF", gaps: map[string]string{"net/http": "the field dropped before the handler: Seawall's head scan (proxy.Listener) refuses it"}, raw: "POST /api/v1/x HTTP/1.0\nHost: s\nTransfer-Encoding: chunked\n\n" + hello, want: http10TE},
		// internal/proxy TestMalformedBodyIs400
		{name: "chunk size not hex", raw: post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", want: refused},
		{name: "chunk size overflows", raw: post + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", want: refused},
		{name: "chunks with bare LF", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", want: refused},
		{name: "a chunked body cut short", raw: post + "Transfer-Encoding: chunked\r\n\r\na\r\nhel", want: refused},
		{name: "a chunk longer than said", raw: post + "Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", want: refused},
		// internal/server TestOversizeHeadIs431
		{name: "an 80 KiB head", raw: "GET /api/x HTTP/1.1\r\nHost: s\r\nX-Filler: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", want: refused},
		{name: "a 60 KiB head", raw: "GET /api/x HTTP/1.1\r\nHost: s\r\nX-Filler: " + strings.Repeat("a", 60<<10) + "\r\n\r\n", want: readAs("")},
		// internal/proxy TestPathNormalisationOnTheWire, TestNeverAnOpenProxy:
		// Seawall resolves the target itself, so the edge must not.
		{name: "dot segments", raw: "GET /api/v1/../../admin HTTP/1.1\r\nHost: s\r\n\r\n", want: targetAsSent("/api/v1/../../admin")},
		{name: "encoded dot segments", raw: "GET /api/v1/%2e%2e/%2E%2E/admin HTTP/1.1\r\nHost: s\r\n\r\n", want: targetAsSent("/api/v1/%2e%2e/%2E%2E/admin")},
		{name: "an encoded slash", raw: "GET /api/v1%2Fitems//7 HTTP/1.1\r\nHost: s\r\n\r\n", want: targetAsSent("/api/v1%2Fitems//7")},
		{name: "absolute form", raw: "GET http://elsewhere.example/x HTTP/1.1\r\nHost: s\r\n\r\n", want: targetAsSent("http://elsewhere.example/x")},
		// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
		// with no Host, or more than one.
		{name: "no Host", raw: "GET /api/x HTTP/1.1\r\n\r\n", want: refused},
		{name: "two Hosts", raw: "GET /api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", want: refused},
		// RFC 9110 §5.5: CR, LF and NUL are never allowed in a field value.
		{name: "NUL in a value", raw: "GET /api/x HTTP/1.1\r\nHost: s\r\nX-A: a\x00b\r\n\r\n", want: refused},
		{name: "a bare CR in a value", raw: "GET /api/x HTTP/1.1\r\nHost: s\r\nX-A: a\rb\r\n\r\n", want: refused},
	}
}

func TestEdgeHostileInput(t *testing.T) {
	servers := []struct {
		name  string
		start func(*testing.T) *edge
	}{{"net/http", netHTTPEdge}, {"fasthttp", fastEdge}}
	edges := make([]*edge, len(servers))
	for i, s := range servers {
		edges[i] = s.start(t)
	}
	var table strings.Builder
	table.WriteString("| case | net/http | fasthttp |\n|---|---|---|\n")
	for _, tc := range edgeCases() {
		row := "| " + tc.name
		for i, s := range servers {
			statuses := send(t, edges[i].addr, tc.raw)
			time.Sleep(20 * time.Millisecond) // a handler still running records
			seen := edges[i].take()
			miss, gap := tc.want(statuses, seen), tc.gaps[s.name]
			switch {
			case gap == "" && miss != "":
				t.Errorf("%s, %s: a new gap: %s", tc.name, s.name, miss)
			case gap != "" && miss == "":
				t.Errorf("%s, %s: the gap %q is closed: take it off the list (and ADR 0006's)", tc.name, s.name, gap)
			}
			cell := "met"
			if miss != "" {
				cell = "**gap**: " + gap
			}
			row += " | " + cell
		}
		table.WriteString(row + " |\n")
	}
	t.Log("\n" + table.String())
}

// A head sent slowly is cut off: both servers close the connection once
// the head's time is up (Seawall: 10 s, TestHeadReadDeadline), and the
// handler never runs.
func TestEdgeSlowHeadIsCutOff(t *testing.T) {
	for _, s := range []struct {
		name  string
		start func(*testing.T) *edge
	}{{"net/http", netHTTPEdge}, {"fasthttp", fastEdge}} {
		e := s.start(t)
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET /api/x HTTP/1.1\r\nHost: s\r\n") // and never the end of the head
		_ = c.SetReadDeadline(time.Now().Add(20 * headTimeout))
		_, err = io.ReadAll(c)
		_ = c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: an unfinished head kept its connection open for %s", s.name, 20*headTimeout)
		}
		if seen := e.take(); len(seen) != 0 {
			t.Errorf("%s: the handler got %+v", s.name, seen)
		}
	}
}

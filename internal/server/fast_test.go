package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/testlog"
	"github.com/seawall/seawall/internal/testwait"
	"github.com/valyala/fasthttp"
)

// A fasthttp server closed before its Serve has begun does not serve:
// Serve returns at once (fasthttp's own Shutdown does nothing to a
// listener its Serve has not reached, and the Serve that came after it
// served on until the process ended).
func TestFastServerClosedBeforeServe(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		srv := AppServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, h2c, config.EngineFastHTTP)
		if err := srv.Close(); err != nil {
			t.Fatalf("h2c %t: Close: %v", h2c, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("h2c %t: Serve after Close returned %v, want http.ErrServerClosed", h2c, err)
			}
		case <-time.After(5 * time.Second):
			_ = ln.Close()
			t.Fatalf("h2c %t: Serve after Close still serving after 5 s", h2c)
		}
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("h2c %t: the listener still accepts after Close", h2c)
		}
	}
}

// A Shutdown with nothing in flight returns no error, on either engine,
// with h2c or without: seawall serve reports a shutdown's error as calls
// cut off.
func TestAppServerShutdownIsClean(t *testing.T) {
	for _, engine := range []string{config.EngineNetHTTP, config.EngineFastHTTP} {
		for _, h2c := range []bool{false, true} {
			srv := AppServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, h2c, engine)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			resp, err := http.Get("http://" + ln.Addr().String() + "/x")
			if err != nil {
				t.Fatalf("%s, h2c %t: %v", engine, h2c, err)
			}
			_ = resp.Body.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("%s, h2c %t: Shutdown: %v", engine, h2c, err)
			}
			cancel()
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s, h2c %t: Serve returned %v, want http.ErrServerClosed", engine, h2c, err)
			}
		}
	}
}

// What making an app's request costs the fasthttp engine (allocations
// are the figure to read; the time is this host's).
func BenchmarkFastRequest(b *testing.B) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(http.MethodPost)
	ctx.Request.SetRequestURI("/api/v1/charges?expand=customer")
	ctx.Request.Header.SetHost("seawall.internal")
	for k, v := range map[string]string{
		"User-Agent": "app/1.2", "Accept": "application/json", "Accept-Encoding": "gzip",
		"Content-Type": "application/json", "Authorization": "Bearer abc", "Idempotency-Key": "charge-1",
	} {
		ctx.Request.Header.Set(k, v)
	}
	ctx.Request.Header.SetContentLength(0)
	base := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := request(&ctx, base, "127.0.0.1:50000", nil)
		if len(r.Header) != 7 || r.URL.RawQuery != "expand=customer" {
			b.Fatalf("the request made: %s %v %v", r.Method, r.URL, r.Header)
		}
	}
}

// The fasthttp engine's *http.Request carries the fields net/http's
// server gives for the same head: repeated fields in order, names common
// and not, Host apart; and a field's values can grow without touching
// another's (they share one array). One difference, fasthttp's: two
// Cookie fields arrive as one, joined with "; " (as RFC 9113 §8.2.3 has a
// proxy join them for HTTP/1.1).
func TestFastRequestFieldsAsNetHTTP(t *testing.T) {
	raw := "GET /api/x/../y?q=1 HTTP/1.1\r\nHost: a.example\r\nAccept: text/html\r\nX-Odd-Name: one\r\n" +
		"Accept: application/json\r\nAuthorization: Bearer t\r\nX-Odd-Name: two\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
	want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	got := request(&ctx, context.Background(), "127.0.0.1:1", nil)
	if c := got.Header["Cookie"]; len(c) != 1 || c[0] != "a=1; b=2" {
		t.Errorf("Cookie %q, want the two joined", c)
	}
	want.Header["Cookie"] = got.Header["Cookie"]
	if fmt.Sprint(got.Header) != fmt.Sprint(want.Header) {
		t.Errorf("fields:\nfasthttp %v\nnet/http %v", got.Header, want.Header)
	}
	if got.Method != want.Method || got.Host != want.Host || got.RequestURI != want.RequestURI || got.URL.String() != want.URL.String() {
		t.Errorf("got %s %s %s %s, want %s %s %s %s", got.Method, got.Host, got.RequestURI, got.URL, want.Method, want.Host, want.RequestURI, want.URL)
	}
	before := fmt.Sprint(got.Header)
	got.Header["Authorization"] = append(got.Header["Authorization"], "added")
	got.Header.Del("Authorization")
	if after := fmt.Sprint(got.Header); after != strings.Replace(before, " Authorization:[Bearer t]", "", 1) {
		t.Errorf("growing one field changed another's:\nbefore %s\nafter  %s", before, after)
	}
}

// fastAnswer is the fasthttp engine around a handler that answers 1 KiB
// with three fields set, on a connection paired as rawListener pairs
// it, so that the hang-up watch and the app's address run as they do in
// seawall serve: serve runs one request and fails tb unless answered.
func fastAnswer(tb testing.TB) (serve func()) {
	body := []byte(strings.Repeat("x", 1<<10))
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Seawall-Request-Id", "0123456789abcdef")
		w.Header().Set("Cache-Status", "seawall; hit")
		_, _ = w.Write(body)
	})
	s := newFastServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, false)
	tb.Cleanup(s.gone.stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	rl := &rawListener{Listener: ln}
	app, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = app.Close() })
	c, err := rl.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	rl.last.outer = c // as outerListener pairs them: here, no framing listener between
	rl.conns.Store(c, rl.last)
	handle := s.handler(rl)
	ctx := new(fasthttp.RequestCtx)
	ctx.Init2(c, nil, false)
	ctx.Request.SetRequestURI("/cache/1k")
	ctx.Request.Header.SetHost("seawall.internal")
	ctx.Request.Header.Set("Accept", "application/json")
	return func() {
		ctx.Response.Reset()
		handle(ctx)
		if ctx.Response.StatusCode() != http.StatusOK || len(ctx.Response.Body()) != len(body) {
			tb.Fatalf("answered %d with %d bytes", ctx.Response.StatusCode(), len(ctx.Response.Body()))
		}
	}
}

// What the fasthttp engine costs a request around Seawall's handler: the
// request made, the hang-up watch, a 1 KiB answer with three fields set
// through answerWriter (allocations are the figure to read).
func BenchmarkFastAnswer(b *testing.B) {
	serve := fastAnswer(b)
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}

// The engine's own allocations a request stay few: the hang-up watch
// keeps its entry on the connection (18 allocations before, with an
// entry and a closure a request), the request's context is one
// (hangup; 16 with a context.WithCancel), and the request's fields, the
// answer's and its writer are the connection's, emptied for each
// request (15 with three maps and a writer made a request), and the
// request's target and host share the string of its fields' values (10
// with one each); the handler's three fields are 3 of the 8.
func TestFastAnswerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	serve := fastAnswer(t)
	if n := testing.AllocsPerRun(200, serve); n > 8 {
		t.Errorf("a request made %.0f allocations, want at most 8", n)
	}
}

// The request the fasthttp engine makes from any head fasthttp reads:
// no panic, every field fasthttp read (Host apart) under its name in the
// order read, nothing else, and the target as sent.
func FuzzFastRequest(f *testing.F) {
	for _, raw := range []string{
		"GET /api/x?q=1 HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\n\r\n",
		"POST /api/../v1/charges HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Odd: 1\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
		"DELETE * HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PROPFIND http://example.com/a%2Fb HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\nuser-agent: y\r\n\r\n",
	} {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.Header.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return
		}
		got := request(&ctx, context.Background(), "127.0.0.1:1", nil)
		want := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			if name := string(k); name != "Host" {
				want[name] = append(want[name], string(v))
			}
		}
		if fmt.Sprint(got.Header) != fmt.Sprint(want) {
			t.Errorf("fields %v, fasthttp read %v", got.Header, want)
		}
		if got.RequestURI != string(ctx.RequestURI()) || got.Method != string(ctx.Method()) {
			t.Errorf("%s %s, fasthttp read %s %s", got.Method, got.RequestURI, ctx.Method(), ctx.RequestURI())
		}
	})
}

// A request fasthttp cannot read is logged without its bytes: they may
// hold an app's credentials (fasthttp's own message quotes the head unless
// told not to).
func TestFastServerLogsNoRequestBytes(t *testing.T) {
	var logged testlog.Buffer // fasthttp's workers log after Serve has returned
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := AppServer(http.NotFoundHandler(), log, nil, false, config.EngineFastHTTP)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	for _, raw := range []string{
		"GET /x HTTP/1.1 extra\r\nHost: a\r\nAuthorization: Bearer s3cret-app-token\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nAuthorization: Bearer s3cret-app-token\r\n\r\n",
	} {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, raw)
		answer, _ := io.ReadAll(c)
		_ = c.Close()
		if !strings.HasPrefix(string(answer), "HTTP/1.1 400 ") {
			t.Errorf("%q answered %q, want a 400", raw, answer)
		}
	}
	_ = srv.Close()
	<-done
	if _, ok := testwait.Within(5*time.Second, func() bool {
		return strings.Count(logged.String(), "error when reading request headers") == 2
	}); !ok {
		t.Fatalf("fasthttp did not log both requests it could not read:\n%s", logged.String())
	}
	if strings.Contains(logged.String(), "s3cret") {
		t.Errorf("the log holds a request's bytes:\n%s", logged.String())
	}
}

// serveFast serves h on the fasthttp engine on a loopback listener until
// the test ends, and returns its address and its server.
func serveFast(t *testing.T, h http.Handler) (string, *fastServer) {
	t.Helper()
	s := newFastServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		<-served
	})
	return ln.Addr().String(), s
}

// deadlined answers as Seawall's handler does: a write deadline set
// first, the answer kept; ?big=1 writes 32 MiB instead, more than
// loopback's socket buffers hold.
var deadlined = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if r.URL.Query().Get("big") == "" {
		_, _ = io.WriteString(w, "ok")
		return
	}
	chunk := make([]byte, 64<<10)
	for range 512 {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
})

// keptAlive opens a connection to addr and makes n requests on it, each
// answered "ok", and returns it, open until the test ends.
func keptAlive(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	c, br := dialApp(t, addr)
	for i := range n {
		if resp, body := ask(t, c, br, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	return c
}

// dialApp is an app's keep-alive connection to addr, closed when t ends.
func dialApp(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

// ask sends a request's head on c and reads its answer whole.
func ask(t *testing.T, c net.Conn, br *bufio.Reader, head string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q: %v", head, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(body)
}

// A keep-alive connection's requests keep one deadline each way on the
// socket: fasthttp sets four a request (idle, head, and the handler's
// write deadline set and cleared), which were four changes to the
// runtime's timers a request; now a deadline is put on the socket only
// when the one there would end later than asked, or sooner than 63/64 of
// the time left.
func TestFastDeadlinesPutLazily(t *testing.T) {
	addr, s := serveFast(t, deadlined)
	const n = 300
	keptAlive(t, addr, n)
	s.mu.Lock()
	put := s.rl.deadlines.Load()
	s.mu.Unlock()
	// The write deadline's 300 ms leaves 4.7 ms of slack, so a slow host
	// puts it more often; never one a request.
	t.Logf("%d deadlines put on the socket for %d requests", put, n)
	if put >= n/2 {
		t.Errorf("%d deadlines put on the socket for %d requests, want fewer than %d", put, n, n/2)
	}
}

// A deadline put lazily still bounds a write that blocks: after many
// requests on the connection, a 32 MiB answer to an app that does not
// read fails at its handler's write deadline (300 ms) and the connection
// is closed, rather than waiting for the app.
func TestFastLazyWriteDeadlineBounds(t *testing.T) {
	addr, _ := serveFast(t, deadlined)
	c := keptAlive(t, addr, 50)
	start := time.Now()
	_, _ = io.WriteString(c, "GET /x?big=1 HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(2 * time.Second) // the app reads nothing meanwhile
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if n >= 32<<20 {
		t.Fatalf("the whole 32 MiB answer arrived (%d bytes): no write deadline", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v with %d bytes read: the write deadline did not end it", time.Since(start).Round(time.Millisecond), n)
	}
}

// requestURL is url.ParseRequestURI, faster for the common target: the
// same URL, or an error where it errs, for any target.
func FuzzRequestURL(f *testing.F) {
	for _, uri := range []string{
		"/api/v1/charges?expand=customer", "/a/b/../c", "/a%2Fb", "/a b", "/a?", "/a??", "/a?b?", "//host/x",
		"/x?q=\x7f", "/x\x00", "*", "http://example.com/a", "/é", "/a!b", "/a#frag", "/a?b#c", "", "/:a@b;c=d",
	} {
		f.Add(uri)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		got, gotErr := requestURL(uri)
		want, wantErr := url.ParseRequestURI(uri)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, url.ParseRequestURI's %v", uri, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %#v, url.ParseRequestURI's %#v", uri, got, want)
		}
	})
}

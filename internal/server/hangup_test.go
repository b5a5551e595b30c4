package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testwait"
)

// A request's context behaves as context.WithCancel's for what is
// derived from it: a child, a timer's child and an AfterFunc end with
// it, a stopped AfterFunc does not run, and a child made after the end
// is done at once. The children register on the request's context
// (AfterFunc), not through a goroutine each.
func TestHangupContextEndsWhatIsDerived(t *testing.T) {
	h := (&sweeper{}).watch(nil, context.WithValue(context.Background(), ctxKey{}, "conn"))
	child, cancelChild := context.WithCancel(h)
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(h, time.Hour)
	defer cancelTimed()
	ran := make(chan struct{})
	context.AfterFunc(h, func() { close(ran) })
	stopped := context.AfterFunc(h, func() { t.Error("a stopped AfterFunc ran") })
	if !stopped() {
		t.Error("stop said the AfterFunc had run")
	}
	h.mu.Lock()
	registered := len(h.after)
	h.mu.Unlock()
	if registered != 3 {
		t.Errorf("%d registered on the request's context, want 3 (the child, the timer's, the AfterFunc)", registered)
	}
	if child.Err() != nil || h.Err() != nil || child.Value(ctxKey{}) != "conn" {
		t.Fatalf("before the end: %v %v %v", child.Err(), h.Err(), child.Value(ctxKey{}))
	}
	(&sweeper{}).unwatch(nil, h)
	for name, c := range map[string]context.Context{"request": h, "child": child, "timed": timed} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s's context did not end", name)
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("the %s's context: %v, want context.Canceled", name, c.Err())
		}
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the AfterFunc did not run")
	}
	late, cancelLate := context.WithCancel(h)
	defer cancelLate()
	select {
	case <-late.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a child made after the end is not done")
	}
	if h.AfterFunc(func() {})() {
		t.Error("an AfterFunc registered after the end could be stopped")
	}
}

type ctxKey struct{}

// When the app hangs up while its request is served, the request's
// context (and what derives from it) ends; on a connection whose
// requests come one after another, each request's context is its own,
// and the ones before were ended with their requests.
func TestFastHangUpEndsTheRequestsContext(t *testing.T) {
	type seen struct {
		path string
		ctx  context.Context
	}
	seenc := make(chan seen, 4)
	addr, _ := serveFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		child, cancel := context.WithCancel(r.Context())
		defer cancel()
		seenc <- seen{r.URL.Path, child}
		if r.URL.Path == "/wait" {
			select {
			case <-child.Done():
			case <-time.After(10 * time.Second):
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	c, br := dialApp(t, addr)
	var first context.Context
	for i := range 2 {
		ask(t, c, br, "GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
		s := <-seenc
		if i == 0 {
			first = s.ctx
		}
	}
	if first.Err() == nil {
		t.Error("a request's context did not end with the request")
	}
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waiting := <-seenc
	if waiting.ctx.Err() != nil {
		t.Fatalf("the request's context ended before the app hung up: %v", waiting.ctx.Err())
	}
	time.Sleep(150 * time.Millisecond) // three of the sweep's ticks: the request is swept
	if waiting.ctx.Err() != nil {
		t.Fatalf("the request's context ended with the app still there: %v", waiting.ctx.Err())
	}
	start := time.Now()
	_ = c.Close()
	select {
	case <-waiting.ctx.Done():
		t.Logf("ended %s after the hang-up", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the request's context did not end when its app hung up")
	}
}

// The fields of a request and of its answer are not seen by the next
// request on the connection, nor in its answer: the maps they are kept
// in serve one request at a time, emptied between. (An app behind a
// shared gateway may send one caller's credentials, then another's
// request, on one connection.)
func TestFastRequestsOnAConnectionShareNoFields(t *testing.T) {
	seen := make(chan http.Header, 2)
	addr, _ := serveFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		if v := r.Header.Get("Authorization"); v != "" {
			w.Header().Set("Set-Cookie", "session="+v)
		}
		w.Header().Set("X-Answer", r.URL.Path)
		_, _ = io.WriteString(w, "ok")
	}))
	c, br := dialApp(t, addr)
	var answers []http.Header
	for _, head := range []string{
		"GET /first HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer caller-1\r\nX-Tenant: one\r\n\r\n",
		"GET /second HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		resp, _ := ask(t, c, br, head)
		answers = append(answers, resp.Header)
	}
	first, second := <-seen, <-seen
	if first.Get("Authorization") != "Bearer caller-1" || first.Get("X-Tenant") != "one" {
		t.Fatalf("the first request's fields: %v", first)
	}
	if len(second) != 0 {
		t.Errorf("the second request came with fields it did not send: %v", second)
	}
	if answers[0].Get("Set-Cookie") != "session=Bearer caller-1" || answers[0].Get("X-Answer") != "/first" {
		t.Fatalf("the first answer: %v", answers[0])
	}
	if answers[1].Get("Set-Cookie") != "" || answers[1].Get("X-Answer") != "/second" {
		t.Errorf("the second answer carries the first's fields: %v", answers[1])
	}
}

// A connection leaves the sweep when it closes, whoever closes it: the
// app, or the server after a handler's abort; the sweep would otherwise
// keep every connection the server ever accepted.
func TestFastSweepForgetsClosedConnections(t *testing.T) {
	addr, s := serveFast(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	swept := func() int {
		s.gone.mu.Lock()
		defer s.gone.mu.Unlock()
		return len(s.gone.conns)
	}
	var conns []net.Conn
	for range 3 {
		c, br := dialApp(t, addr)
		ask(t, c, br, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
		conns = append(conns, c)
	}
	if n := swept(); n != 3 {
		t.Fatalf("%d connections in the sweep, want the 3 open", n)
	}
	aborted, _ := dialApp(t, addr)
	if _, err := io.WriteString(aborted, "GET /abort HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if _, ok := testwait.Within(5*time.Second, func() bool { return swept() == 0 }); !ok {
		t.Errorf("%d connections still in the sweep after all closed", swept())
	}
}

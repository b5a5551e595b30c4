package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// problemOf decodes a problem+json answer, failing the test if it is not one.
func problemOf(t *testing.T, r result) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q (status %d, body %s), want application/problem+json", ct, r.status, r.body)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if r.header.Get("Seawall-Source") != "seawall" {
		t.Errorf("Seawall-Source = %q on a Seawall error, want seawall", r.header.Get("Seawall-Source"))
	}
	return p
}

func TestPassThrough(t *testing.T) {
	s := newStack(t, "", `    headers:
      Authorization: Bearer injected-secret
`)
	s.fake.Set(fakeapi.Behavior{Status: 201, Body: "made", Headers: map[string]string{
		"X-Vendor": "v", "Keep-Alive": "timeout=5", "Connection": "X-Up-Hop", "X-Up-Hop": "must not pass"}})
	req, _ := http.NewRequest(http.MethodPost, s.sw.URL+"/api/v1/items%2Fx?q=1&r=%20", strings.NewReader("payload"))
	req.Header.Set("Authorization", "Bearer app-token")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not pass")
	req.Header.Set("Seawall-Request-Id", "rid-123")
	req.Header.Set("Seawall-Mode", "sync")
	req.Header.Set("X-Forwarded-For", "10.0.0.7")
	req.Header.Set("Forwarded", "for=10.0.0.7")
	req.Header.Set("Te", "trailers")
	r := s.do(req)
	if r.status != 201 || r.body != "made" {
		t.Fatalf("got %d %q, want 201 made", r.status, r.body)
	}
	if r.header.Get("X-Vendor") != "v" || r.header.Get("Keep-Alive") != "" || r.header.Get("X-Up-Hop") != "" {
		t.Errorf("response headers = %v: want X-Vendor kept, Keep-Alive and X-Up-Hop (hop-by-hop) stripped", r.header)
	}
	if got := r.header.Values("Seawall-Request-Id"); len(got) != 1 || got[0] != "rid-123" {
		t.Errorf("response Seawall-Request-Id = %v, want [rid-123]", got)
	}
	if r.header.Get("Seawall-Source") != "upstream" {
		t.Errorf("Seawall-Source = %q, want upstream", r.header.Get("Seawall-Source"))
	}
	calls := s.fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("upstream got %d calls, want 1", len(calls))
	}
	c := calls[0]
	if c.Path != "/v1/items%2Fx?q=1&r=%20" || c.Body != "payload" || c.Method != "POST" {
		t.Errorf("upstream got %s %s %q", c.Method, c.Path, c.Body)
	}
	checks := map[string]string{"Authorization": "Bearer injected-secret", "X-Hop": "", "Seawall-Request-Id": "rid-123", "Seawall-Mode": "",
		"X-Forwarded-For": "", "Forwarded": "", "Te": "trailers", "Connection": ""}
	for h, want := range checks {
		if got := c.Header.Get(h); got != want {
			t.Errorf("upstream header %s = %q, want %q", h, got, want)
		}
	}
}

// Acceptance 7: unknown upstream, absolute-URI and CONNECT requests.
func TestNeverAnOpenProxy(t *testing.T) {
	s := newStack(t, "", "")
	r := s.get("/nope/v1/x")
	if r.status != 404 {
		t.Fatalf("unknown upstream: status %d, want 404", r.status)
	}
	if p := problemOf(t, r); p["type"] != "urn:seawall:problem:unknown-upstream" {
		t.Errorf("type = %v", p["type"])
	}
	for _, raw := range []string{
		"GET http://evil.example/steal HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
		"GET http://" + strings.TrimPrefix(s.up.URL, "http://") + "/api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.sw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(conn, raw)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Seawall-Error") != "not-a-proxy" {
			t.Errorf("%q: status %d, error %q; want 400 not-a-proxy", strings.SplitN(raw, "\r", 2)[0], resp.StatusCode, resp.Header.Get("Seawall-Error"))
		}
	}
	if n := s.fake.Count(); n != 0 {
		t.Errorf("upstream got %d calls, want none", n)
	}
}

func TestRequestTooLarge(t *testing.T) {
	t.Parallel()
	s := newStack(t, "limits: {max_request_body: 1KiB}", "")
	r := s.post("/api/upload", strings.Repeat("x", 2000), nil)
	if r.status != 413 {
		t.Fatalf("status %d, want 413", r.status)
	}
	if p := problemOf(t, r); p["type"] != "urn:seawall:problem:request-too-large" {
		t.Errorf("type = %v", p["type"])
	}
	// Chunked, so the size is only known while reading.
	req, _ := http.NewRequest(http.MethodPost, s.sw.URL+"/api/upload", strings.NewReader(strings.Repeat("x", 2000)))
	req.ContentLength = -1
	if r := s.do(req); r.status != 413 {
		t.Errorf("chunked: status %d, want 413", r.status)
	}
	if n := s.fake.Count(); n != 0 {
		t.Errorf("upstream got %d calls, want none", n)
	}
}

func TestUnsupportedModeIsRefused(t *testing.T) {
	s := newStack(t, "", "")
	req, _ := http.NewRequest(http.MethodGet, s.sw.URL+"/api/x", nil)
	req.Header.Set("Seawall-Mode", "async")
	r := s.do(req)
	if r.status != 400 || problemOf(t, r)["type"] != "urn:seawall:problem:unsupported-mode" {
		t.Errorf("got %d %s, want 400 unsupported-mode", r.status, r.body)
	}
}

// The per-try timeout ends an attempt that has no answer header in time,
// through Seawall's own client and through net/http's (http2: true).
func TestTimeouts(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"", "    http2: true\n"} {
		s := newStack(t, "", `    timeouts: {per_try: 100ms, overall: 2s}
    retry: {max_attempts: 2, base_delay: 1ms, max_delay: 1ms}
    breaker: {disabled: true}
`+client)
		s.fake.Set(fakeapi.Behavior{LatencyMin: fakeapi.Duration(time.Second)})
		r := s.get("/api/slow")
		if r.status != 504 {
			t.Fatalf("%q: status %d (%s), want 504", client, r.status, r.body)
		}
		p := problemOf(t, r)
		if p["type"] != "urn:seawall:problem:retries-exhausted" || p["attempts"] != 2.0 ||
			!strings.Contains(fmt.Sprint(p["detail"]), "per-try timeout of 100ms") {
			t.Errorf("%q: problem = %v, want retries-exhausted after 2 attempts at the per-try timeout", client, p)
		}
		if n := s.fake.Count(); n != 2 {
			t.Errorf("%q: upstream got %d calls, want 2", client, n)
		}
	}
}

// A deadline that fires while the body is awaited, before anything
// reached the app, is a 504, logged and counted as one: not a 200 cut
// short.
func TestDeadlineBeforeTheBodyIs504(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		select { // the body never comes in time
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	s := newStackURL(t, "", up.URL, "    timeouts: {overall: 300ms}\n")
	r := s.get("/api/slow-body")
	if r.status != 504 || problemOf(t, r)["type"] != "urn:seawall:problem:upstream-timeout" {
		t.Fatalf("%d %s, want 504 upstream-timeout", r.status, r.body)
	}
	if n := s.metric("requests_total", "code=504", "source=seawall"); n != 1 {
		t.Errorf("requests_total{code=504,source=seawall} = %v, want 1", n)
	}
	if !strings.Contains(s.logs.String(), `"status":504`) {
		t.Errorf("log has no line with status 504: %s", s.logs.String())
	}
}

func TestUnreachableIsRetriedForAnyMethod(t *testing.T) {
	s := newStack(t, "", `    retry: {max_attempts: 3, base_delay: 1ms, max_delay: 1ms, budget: {min_per_second: 10}}
`)
	s.up.Close() // connection refused from now on
	r := s.post("/api/charges", "{}", nil)
	if r.status != 502 {
		t.Fatalf("status %d, want 502", r.status)
	}
	p := problemOf(t, r)
	if p["type"] != "urn:seawall:problem:retries-exhausted" || p["attempts"] != 3.0 {
		t.Errorf("problem = %v, want retries-exhausted after 3 attempts: a POST that never left may be retried", p)
	}
	if got := s.metric("upstream_attempts_total", "result=error"); got != 3 {
		t.Errorf("attempts metric = %v, want 3", got)
	}
}

// Acceptance 5: 30% random 503s, max_attempts 4.
func TestRetriesMaskTransientErrors(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", `    retry:
      max_attempts: 4
      base_delay: 2ms
      max_delay: 20ms
      budget: {ratio: 0.5, min_per_second: 1}
    breaker: {failure_rate: 90}
`)
	s.fake.Set(fakeapi.Behavior{ErrorRate: 0.3})
	// With independent 30% errors and 4 attempts, 0.3^4 = 0.81% of requests
	// are expected to fail. 20,000 requests put the 1% limit about three
	// standard deviations (sqrt(162) ≈ 12.7 requests) above that, so the
	// test fails on a real regression, not on chance.
	const requests = 20000
	var ok atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < requests; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if r := s.get(fmt.Sprintf("/api/items/%d", i)); r.status == 200 {
				ok.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if got := float64(ok.Load()) / requests; got < 0.99 {
		t.Errorf("success rate %.3f, want >= 0.99", got)
	}
	if attempts, limit := s.fake.Count(), int(1.5*requests); attempts > limit {
		t.Errorf("upstream attempts %d, want <= (1 + 0.5 budget) x %d = %d", attempts, requests, limit)
	}
	t.Logf("success %d/%d with %d upstream attempts", ok.Load(), requests, s.fake.Count())

	// A POST without Idempotency-Key is sent exactly once; with a key it is retried.
	s.fake.Set(fakeapi.Behavior{Down: true})
	s.fake.Reset()
	for i := 0; i < 10; i++ {
		if r := s.post("/api/charges", "{}", nil); r.status != 503 || r.header.Get("Seawall-Source") != "upstream" {
			t.Fatalf("POST: got %d from %q, want the upstream's 503", r.status, r.header.Get("Seawall-Source"))
		}
	}
	if n := s.fake.Count(); n != 10 {
		t.Errorf("10 POSTs without Idempotency-Key made %d upstream calls, want exactly 10", n)
	}
	s.fake.Reset()
	r := s.post("/api/charges", "{}", map[string]string{"Idempotency-Key": "k-1"})
	if n := s.fake.Count(); n != 4 || r.header.Get("Seawall-Attempts") != "4" {
		t.Errorf("POST with Idempotency-Key: %d upstream calls (Seawall-Attempts %q), want 4", n, r.header.Get("Seawall-Attempts"))
	}
	for _, c := range s.fake.Calls() {
		if c.Body != "{}" || c.Header.Get("Idempotency-Key") != "k-1" {
			t.Errorf("replayed attempt body %q key %q, want the original", c.Body, c.Header.Get("Idempotency-Key"))
		}
	}
}

// Acceptance 6: a client that disconnects mid-call is neither retried nor
// counted by the breaker.
func TestClientDisconnectIsNotAFailure(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", `    retry: {max_attempts: 3, base_delay: 1ms, max_delay: 1ms}
    breaker: {min_calls: 1, failure_rate: 1}
`)
	s.fake.Set(fakeapi.Behavior{LatencyMin: fakeapi.Duration(2 * time.Second)})
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.sw.URL+"/api/slow", nil)
		if r := s.do(req); r.err == nil {
			t.Fatalf("request finished with %d, want the client to give up", r.status)
		}
		cancel()
	}
	eventually(t, 5*time.Second, "five requests logged as 499", func() bool {
		return s.metric("requests_total", "code=499") == 5
	})
	if n := s.fake.Count(); n != 5 {
		t.Errorf("upstream got %d calls, want 5: a cancelled call is not retried", n)
	}
	if st := s.ups.Get("api").Breaker.State().String(); st != "closed" {
		t.Errorf("breaker %s after client cancellations, want closed (one failure would open it)", st)
	}
	s.fake.Set(fakeapi.Behavior{})
	if r := s.get("/api/ok"); r.status != 200 {
		t.Errorf("after cancellations: status %d, want 200", r.status)
	}
}

// A response of unknown length is relayed as it arrives, and its trailers
// follow it.
func TestStreamingAndTrailers(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	releaseUp := func() { once.Do(func() { close(release) }) }
	var gaveUp atomic.Bool // the upstream waited in vain for the app to see its first chunk
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = w.Write([]byte("first;"))
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			gaveUp.Store(true)
		}
		_, _ = w.Write([]byte("second"))
		w.Header().Set("X-Checksum", "abc")
	}))
	defer up.Close()
	defer releaseUp()
	s := newStackURL(t, "", up.URL, "")
	resp, err := s.c.Get(s.sw.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("first chunk = %q, %v: want it relayed before the upstream finished", first, err)
	}
	if gaveUp.Load() {
		t.Fatal("the first chunk reached the app only when the upstream finished: the relay buffered a stream")
	}
	releaseUp()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("trailer X-Checksum = %q, want abc (trailers: %v)", got, resp.Trailer)
	}
}

func TestResponseTooLarge(t *testing.T) {
	s := newStack(t, "limits: {max_response_body: 1KiB}", "")
	s.fake.Set(fakeapi.Behavior{Body: strings.Repeat("x", 4096)})
	r := s.get("/api/big")
	if r.status != 502 || problemOf(t, r)["type"] != "urn:seawall:problem:response-too-large" {
		t.Errorf("declared-length body over the limit: %d %s, want 502 response-too-large", r.status, r.body)
	}
	// A chunked body that grows past the limit is cut off, never relayed whole.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i < 8; i++ {
			_, _ = w.Write([]byte(strings.Repeat("y", 512)))
			http.NewResponseController(w).Flush()
		}
	}))
	defer up.Close()
	s2 := newStackURL(t, "limits: {max_response_body: 1KiB}", up.URL, "")
	r = s2.get("/api/stream")
	if r.err == nil && len(r.body) > 1024 {
		t.Errorf("chunked body relayed with %d bytes, want at most 1024 and an aborted response", len(r.body))
	}
	// Past the limit within the first read, nothing has reached the app
	// yet and the answer is a 502; past it later, the response is aborted.
	tooLarge := r.err == nil && r.status == 502 && problemOf(t, r)["type"] == "urn:seawall:problem:response-too-large"
	if r.err == nil && !tooLarge {
		t.Errorf("chunked body over the limit ended cleanly: %d, %d bytes; want 502 response-too-large or the response aborted", r.status, len(r.body))
	}
}

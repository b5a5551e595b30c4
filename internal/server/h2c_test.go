package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// h2Client speaks HTTP/2 without TLS with prior knowledge, and nothing
// else: a call it makes either is HTTP/2 or fails.
func h2Client() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 10 * time.Second}
}

// With h2c on, an app speaking HTTP/2 is served over HTTP/2 on the
// application listener, beside HTTP/1.1 on the same port, and what the
// HTTP/1.1 path does holds for it: the vendor is called over HTTP/1.1
// with the app's method, body and fields; the answer, its 103 and its
// trailer are relayed; a body over the limit, a body that stops
// arriving and a vendor too slow get their 413, 408 and 504; Seawall's own
// answers are problems with the request id.
func TestH2CServesHTTP2FromApps(t *testing.T) {
	type seen struct{ proto, method, body, key string }
	var mu sync.Mutex
	var calls []seen
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, seen{r.Proto, r.Method, string(b), r.Header.Get("X-App-Key")})
		mu.Unlock()
		switch r.URL.Path {
		case "/hints":
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			_, _ = io.WriteString(w, "after hints")
		case "/slow":
			time.Sleep(time.Second)
		case "/trailer":
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "streamed")
			http.NewResponseController(w).Flush()
			w.Header().Set("X-Checksum", "abc")
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
		}
	}))
	defer vendor.Close()
	s, _, _ := startDoc(t, `listen: 127.0.0.1:0
h2c: true
admin: {listen: off}
limits: {max_request_body: 1KiB, body_read_timeout: 300ms}
upstreams:
  api: {url: `+vendor.URL+`, retry: {max_attempts: 1}, timeouts: {per_try: 100ms, overall: 2s}, breaker: {disabled: true}}
`)
	app := "http://" + s.Addrs()[0].String()
	c := h2Client()
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s over h2c: %v", req.Method, req.URL.Path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s %s answered over %s, want HTTP/2", req.Method, req.URL.Path, resp.Proto)
		}
		return resp, string(b)
	}

	req, _ := http.NewRequest(http.MethodGet, app+"/api/v1/items/7", nil)
	req.Header.Set("X-App-Key", "k-7")
	resp, body := do(req)
	if resp.StatusCode != 200 || body != `{"path":"/v1/items/7"}` || resp.Header.Get("Seawall-Source") != "upstream" || resp.Header.Get("Seawall-Request-Id") == "" {
		t.Errorf("GET: %d %q, Seawall-Source %q, request id %q; want the vendor's answer relayed with Seawall's fields",
			resp.StatusCode, body, resp.Header.Get("Seawall-Source"), resp.Header.Get("Seawall-Request-Id"))
	}

	req, _ = http.NewRequest(http.MethodPost, app+"/api/v1/orders", strings.NewReader(`{"qty":2}`))
	if resp, _ := do(req); resp.StatusCode != 200 {
		t.Errorf("POST: %d, want 200", resp.StatusCode)
	}

	req, _ = http.NewRequest(http.MethodPost, app+"/api/v1/orders", strings.NewReader(strings.Repeat("x", 4096)))
	if resp, body := do(req); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 4 KiB over a 1 KiB limit: %d %q, want 413", resp.StatusCode, body)
	}

	req, _ = http.NewRequest(http.MethodGet, app+"/api/slow", nil)
	if resp, body := do(req); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("a vendor slower than the per-try timeout: %d %q, want 504", resp.StatusCode, body)
	}

	// A body that stops arriving: 408 once body_read_timeout has passed.
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = io.WriteString(pw, `{"qty":`) }() // and nothing more
	req, _ = http.NewRequest(http.MethodPost, app+"/api/v1/orders", pr)
	if resp, body := do(req); resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a body that stops arriving: %d %q, want 408", resp.StatusCode, body)
	}

	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ = http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, app+"/api/hints", nil)
	if resp, body := do(req); len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" || body != "after hints" || resp.Header.Get("Link") != "" {
		t.Errorf("103: 1xx %v, then %q with Link %q; want the 103 relayed, then the answer without its fields", hints, body, resp.Header.Get("Link"))
	}

	req, _ = http.NewRequest(http.MethodGet, app+"/api/trailer", nil)
	if resp, body := do(req); body != "streamed" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("trailer: %q with trailers %v, want the body and X-Checksum: abc", body, resp.Trailer)
	}

	req, _ = http.NewRequest(http.MethodGet, app+"/nope/x", nil)
	resp, body = do(req)
	var problem map[string]any
	if err := json.Unmarshal([]byte(body), &problem); err != nil || resp.StatusCode != 404 ||
		resp.Header.Get("Content-Type") != "application/problem+json" || problem["request_id"] != resp.Header.Get("Seawall-Request-Id") {
		t.Errorf("unknown upstream: %d %s %q, want a 404 problem carrying the request id", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// HTTP/1.1 on the same port, as before.
	h1, err := http.Get(app + "/api/v1/items/8")
	if err != nil {
		t.Fatal(err)
	}
	_ = h1.Body.Close()
	if h1.ProtoMajor != 1 || h1.StatusCode != 200 {
		t.Errorf("HTTP/1.1 beside h2c: %s %d, want HTTP/1.1 200", h1.Proto, h1.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []seen{
		{"HTTP/1.1", "GET", "", "k-7"},
		{"HTTP/1.1", "POST", `{"qty":2}`, ""},
		{"HTTP/1.1", "GET", "", ""}, // slow
		{"HTTP/1.1", "GET", "", ""}, // hints
		{"HTTP/1.1", "GET", "", ""}, // trailer
		{"HTTP/1.1", "GET", "", ""}, // HTTP/1.1
	}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("the vendor saw %v, want %v", calls, want)
	}
}

// Unset, h2c is off: an app that speaks HTTP/2 with prior knowledge is
// not served, and the vendor is not called.
func TestH2COffByDefault(t *testing.T) {
	called := make(chan struct{}, 1)
	vendor := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called <- struct{}{} }))
	defer vendor.Close()
	s, _, _ := startDoc(t, `listen: 127.0.0.1:0
admin: {listen: off}
upstreams:
  api: {url: `+vendor.URL+`}
`)
	resp, err := h2Client().Get("http://" + s.Addrs()[0].String() + "/api/x")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("an h2c call to a Seawall without h2c was answered: %s %d", resp.Proto, resp.StatusCode)
	}
	select {
	case <-called:
		t.Fatal("the vendor was called")
	default:
	}
}

// A reload that turns h2c on applies the rest and says h2c waits for the
// next start, as the listener's protocols are fixed when it opens.
func TestReloadSaysH2CNeedsARestart(t *testing.T) {
	parse := func(doc string) *config.Config {
		t.Helper()
		cfg, err := config.Parse("t.yaml", []byte(doc), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := "listen: 127.0.0.1:0\nupstreams:\n  api: {url: http://127.0.0.1:1}\n"
	was, now := parse(base), parse("h2c: true\n"+base)
	if got := needRestart(was, now); fmt.Sprint(got) != "[h2c]" {
		t.Errorf("turning h2c on: need restart %v, want [h2c]", got)
	}
	if got := needRestart(was, parse(base)); len(got) != 0 {
		t.Errorf("the same file: need restart %v, want none", got)
	}
}

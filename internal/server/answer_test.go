package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/upstream"
)

// Seawall's handler answers alike on its two engines, net/http's server
// and fasthttp's (answerWriter): a vendor's streamed body, a large one,
// its 1xx, its trailers, an answer without a Content-Type (net/http
// sniffs one), a HEAD, HTTP/1.0, requests net/http refuses (400, the
// connection closed), a request's body (sized, chunked, with trailers,
// after 100-continue, over Seawall's limit), an Upgrade asked (Seawall
// relays none: the request is served as any other), HTTP/1.0 with
// Transfer-Encoding (Seawall's bad-request problem), and pipelined
// requests mixing kept and streamed answers, each sent as raw bytes on
// one connection and the answers compared field by field.
func TestAnswersAsNetHTTP(t *testing.T) {
	cfg := answerConfig(t, answerVendor(t, nil))
	nethttp, fast := seawallOnNetHTTP(t, cfg), seawallOnFastHTTP(t, cfg)
	for _, tc := range []struct {
		name, raw string
		methods   []string // of the requests in raw; nil: one, raw's first word
	}{
		{"kept", "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"streamed", "GET /api/stream HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"large", "GET /api/large HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"large, streamed", "GET /api/large?flush=1 HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"1xx", "GET /api/hints HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"trailers", "GET /api/trailers HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"HEAD streamed", "HEAD /api/stream HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"HTTP/1.0 streamed", "GET /api/stream HTTP/1.0\r\nHost: a\r\n\r\n", nil},
		{"no type, text", "GET /api/untyped?b=text HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"no type, PNG", "GET /api/untyped?b=png HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"no type, streamed", "GET /api/untyped?b=png&flush=1 HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"no type, empty", "GET /api/untyped?b= HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"body", "POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", nil},
		{"body chunked", "POST /api/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", nil},
		{"body chunked, trailers", "POST /api/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n", nil},
		{"expect 100-continue", "POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello", []string{"POST"}},
		{"upgrade asked", "GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", nil},
		{"Transfer-Encoding on HTTP 1.0", "POST /api/echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", nil},
		{"body too large", "POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("x", 2000), nil},
		{"refused: bad request line", "GET /api/x HTTP/1.1 extra\r\nHost: a\r\n\r\n", nil},
		{"refused: a space in a field name", "GET /api/x HTTP/1.1\r\nHost: a\r\nBad Field: x\r\n\r\n", nil},
		{"refused: a control character in a value", "GET /api/x HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", nil},
		{"refused: no host", "GET /api/x HTTP/1.1\r\n\r\n", nil},
		{"pipelined", "GET /api/stream HTTP/1.1\r\nHost: a\r\n\r\nGET /api/x HTTP/1.1\r\nHost: a\r\n\r\n" +
			"GET /api/hints HTTP/1.1\r\nHost: a\r\n\r\nGET /api/stream HTTP/1.1\r\nHost: a\r\n\r\n" +
			"POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
			"GET /api/trailers HTTP/1.1\r\nHost: a\r\n\r\nGET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"GET", "GET", "GET", "GET", "POST", "GET", "GET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			methods := tc.methods
			if methods == nil {
				methods = strings.Fields(tc.raw)[:1]
			}
			want, got := exchange(t, nethttp, tc.raw, methods), exchange(t, fast, tc.raw, methods)
			if len(got) != len(want) {
				t.Fatalf("fasthttp answered %d times, net/http %d:\n%s\n---\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for i := range want {
				if strings.HasPrefix(tc.name, "refused") {
					// The reason in the body is each server's own words.
					got[i], want[i] = statusAndClose(got[i]), statusAndClose(want[i])
				}
				if got[i] != want[i] {
					t.Errorf("answer %d:\nfasthttp: %s\nnet/http: %s", i+1, got[i], want[i])
				}
			}
		})
	}
}

// A request body refused as too large is never read as requests: the
// rest of a chunked body over Seawall's limit, which holds a request,
// does not reach the vendor on fasthttp, which discards the rest and
// keeps the connection (net/http closes it: TestAnswersAsNetHTTP leaves
// this case out for that one difference).
func TestAnswerRefusedBodyIsNotARequest(t *testing.T) {
	var smuggled atomic.Int32
	v := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/smuggled" {
			smuggled.Add(1)
		}
	}))
	t.Cleanup(v.Close)
	addr := seawallOnFastHTTP(t, answerConfig(t, v.URL))
	inner := "GET /api/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	next := "GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	chunk := strings.Repeat("x", 1100) + inner
	sized := inner + strings.Repeat("x", 2000-len(inner)) // refused by its length, before a byte is read
	for name, raw := range map[string]string{
		"chunked": fmt.Sprintf("POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(chunk), chunk) + next,
		"sized":   "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" + sized + next,
	} {
		got := exchange(t, addr, raw, []string{"POST", "GET"})
		if len(got) == 0 || !strings.HasPrefix(got[0], "413 ") {
			t.Fatalf("%s: answers %q, want a 413 first", name, got)
		}
		if n := smuggled.Swap(0); n != 0 {
			t.Fatalf("%s: the vendor was sent %d requests from inside a refused body", name, n)
		}
	}
}

// A streamed body reaches the app as the vendor sends it: the vendor
// sends its second part only once the app has the first.
func TestAnswerStreams(t *testing.T) {
	first := make(chan struct{})
	cfg := answerConfig(t, answerVendor(t, first))
	c, err := net.DialTimeout("tcp", seawallOnFastHTTP(t, cfg), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /api/gated HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bufio.NewReader(resp.Body)
	line, err := body.ReadString('\n')
	if err != nil || line != "part 0\n" {
		t.Fatalf("first part %q, %v", line, err)
	}
	close(first)
	if line, err = body.ReadString('\n'); line != "part 1\n" {
		t.Fatalf("then %q, %v; want part 1, which the vendor sends once the app has part 0", line, err)
	}
}

// answerVendor is a vendor that streams, hints, sends trailers, or
// answers whole; /gated sends its second part once first is closed, or
// says after 3 s that it was not.
func answerVendor(t *testing.T, first chan struct{}) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/gated", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "part 0\n")
		w.(http.Flusher).Flush()
		select {
		case <-first:
			fmt.Fprint(w, "part 1\n")
		case <-time.After(3 * time.Second):
			fmt.Fprint(w, "the app did not have part 0 within 3 s\n")
		}
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Add("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("body with a trailer\n"))
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/untyped", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // sent without one: the vendor sniffs none
		body := map[string]string{"text": "plain words", "png": "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "": ""}[r.URL.Query().Get("b")]
		_, _ = io.WriteString(w, body)
		if r.URL.Query().Get("flush") != "" {
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Query().Get("flush") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		}
		for range 16 {
			_, _ = w.Write(bytes.Repeat([]byte{'l'}, 64<<10))
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%d bytes, length %d, %v: %q", len(b), r.ContentLength, err, b)
	})
	mux.HandleFunc("/x", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("small\n"))
	})
	v := httptest.NewServer(mux)
	t.Cleanup(v.Close)
	return v.URL
}

func answerConfig(t *testing.T, vendor string) *config.Config {
	cfg, err := config.Parse("answer.yaml", []byte(`admin: {listen: "off"}
log: {level: error}
limits: {max_request_body: 1KiB}
upstreams:
  api:
    url: `+vendor+`
    retry: {max_attempts: 1}
`), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// seawallOnNetHTTP serves Seawall's handler as seawall serve does with
// engine: net/http.
func seawallOnNetHTTP(t *testing.T, cfg *config.Config) string {
	return seawallOn(t, cfg, config.EngineNetHTTP)
}

// seawallOnFastHTTP serves it as seawall serve does with engine: fasthttp.
func seawallOnFastHTTP(t *testing.T, cfg *config.Config) string {
	return seawallOn(t, cfg, config.EngineFastHTTP)
}

func seawallOn(t *testing.T, cfg *config.Config, engine string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ups := upstream.NewSet(cfg, upstream.Parts{Metrics: proxy.NewMetrics(), Log: log})
	t.Cleanup(ups.Close)
	srv := AppServer(proxy.New(cfg, ups), log, nil, cfg.H2C, engine)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// exchange sends raw on a new connection to addr and reads the answers to
// its requests, of methods (1xx included), each as one
// line: status, the fields but Date and the request id, the body, the
// trailers, and whether the answer ends the connection (net/http answers
// an HTTP/1.0 request as HTTP/1.0, fasthttp as HTTP/1.1: both close).
func exchange(t *testing.T, addr, raw string, methods []string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []string
	for req, method := range methods {
		for {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				out = append(out, fmt.Sprintf("answer to request %d: %v", req+1, err))
				return out
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				out = append(out, fmt.Sprintf("answer to request %d: body: %v", req+1, err))
				return out
			}
			body = problemRequestID.ReplaceAll(body, []byte(`"request_id":"…"`))
			shown := fmt.Sprintf("%q", body)
			if len(body) > 1<<10 {
				shown = fmt.Sprintf("%d bytes, SHA-256 %x", len(body), sha256.Sum256(body))
			}
			out = append(out, fmt.Sprintf("%d %s body %s trailer %s close %t", resp.StatusCode, fields(resp.Header), shown, fields(resp.Trailer), resp.Close))
			if resp.StatusCode >= 200 {
				break
			}
		}
	}
	return out
}

// statusAndClose is an answer's line from exchange without its fields
// and body.
func statusAndClose(line string) string {
	i := strings.LastIndex(line, " close ")
	if i < 0 {
		return line // not an answer: an error reading one
	}
	status, _, _ := strings.Cut(line, " ")
	return status + line[i:]
}

// problemRequestID is a problem's request id, one a request.
var problemRequestID = regexp.MustCompile(`"request_id":"[^"]*"`)

// fields is a header's fields, sorted, but for Date, the request id and
// Connection (the answer's Close says it).
func fields(h http.Header) string {
	var kv []string
	for k, vs := range h {
		if k == "Date" || k == "Seawall-Request-Id" || k == "Connection" {
			continue
		}
		kv = append(kv, k+"="+strings.Join(vs, ","))
	}
	slices.Sort(kv)
	return "[" + strings.Join(kv, " ") + "]"
}

package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/tracing"
)

// benchWriter is the least a handler can write to: it keeps the header
// map, which net/http makes anew for every request, and discards the body.
// Its deadline methods let http.ResponseController succeed without a
// connection.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header              { return w.h }
func (w *benchWriter) Write(p []byte) (int, error)      { return len(p), nil }
func (w *benchWriter) WriteHeader(status int)           { w.status = status }
func (w *benchWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *benchWriter) SetReadDeadline(time.Time) error  { return nil }

// handlerSeawall is a proxy logging errors only, as the harness's does.
func handlerSeawall(b testing.TB, doc string) *proxy.Proxy {
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	p, _, _ := build(b, mustParse(b, doc), log, proxy.NewMetrics())
	return p
}

// benchHandler measures Seawall's handler alone, without the network or
// net/http's server: the per-request work that is Seawall's own.
func benchHandler(b *testing.B, h http.Handler, target string, want int) {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	w := &benchWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // the first call fills a cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.h, w.status = make(http.Header), 0
		h.ServeHTTP(w, r)
		if w.status != want {
			b.Fatalf("status %d, want %d", w.status, want)
		}
	}
}

// A cache hit costs the handler a fixed, small number of allocations: the
// request id, the exchange (which holds its field value), the key, and the
// answer's own fields. The header map grows no table (it holds seven
// fields, a small body's length left to the server, and is assigned each
// once), the key is built without fmt, and
// the metrics and the target URL cost none.
func TestCacheHitAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	p := cacheSeawall(t)
	w, allocs := handlerAllocs(p, "/cache/1k")
	if w.status != http.StatusOK || !strings.HasPrefix(w.h.Get("Cache-Status"), "Seawall; hit") {
		t.Fatalf("not a hit: %d %v", w.status, w.h)
	}
	// 8 with the map made here; it was 28 before the hit path was
	// trimmed, and 10 before the request id's value joined the exchange
	// and the Age and Content-Length values shared one string.
	if allocs > 8 {
		t.Errorf("a cache hit made %.0f allocations, want at most 8", allocs)
	}
}

// A call the open breaker refuses is answered with its problem at a
// fixed, small number of allocations: the refusal is classified without
// walking the error chain twenty times, and the problem's fields are set
// without canonicalizing their names.
func TestFailFastAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	p := downSeawall(t)
	w, allocs := handlerAllocs(p, "/down/x")
	if w.status != http.StatusServiceUnavailable || w.h.Get("Seawall-Error") != "circuit-open" || w.h.Get("Retry-After") == "" {
		t.Fatalf("not a refusal: %d %v", w.status, w.h)
	}
	// 6 with the map made here: 21, then 17 before the problem's JSON
	// was appended rather than encoded by reflection, 11 before the
	// problem's type and Seawall-Error value were made once a kind, its
	// JSON buffer lent, and the Retry-After value kept for the second.
	if allocs > 6 {
		t.Errorf("a refusal made %.0f allocations, want at most 6", allocs)
	}
}

// cacheSeawall is a proxy whose route /cache/ caches a vendor's 1 KiB
// answer for an hour, with the policies of the harness's (b) on.
func cacheSeawall(tb testing.TB) *proxy.Proxy {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(make([]byte, 1024))
	}))
	tb.Cleanup(up.Close)
	return handlerSeawall(tb, `admin: {listen: "off"}
log: {level: error}
upstreams:
  cache:
    url: `+up.URL+`
    mode: cached
    cache: {}
    rate_limit: {rate: 10000000/s, burst: 100000}
    retry: {max_attempts: 3}
`)
}

// downSeawall is a proxy whose upstream /down/ is never reachable: its
// breaker opens on the first call and stays open for an hour, as in the
// harness's (c).
func downSeawall(tb testing.TB) *proxy.Proxy {
	return handlerSeawall(tb, `admin: {listen: "off"}
log: {level: error}
upstreams:
  down:
    url: http://127.0.0.1:1
    retry: {max_attempts: 1}
    breaker: {min_calls: 1, failure_rate: 50, open_duration: 1h, max_open_duration: 1h}
`)
}

// handlerAllocs calls p once (to fill a cache or open a breaker), then
// counts the allocations of a call to target, and returns its writer. The
// request's context can be cancelled, as net/http's server gives each
// request: contexts derived from it register with it.
func handlerAllocs(p http.Handler, target string) (*benchWriter, float64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequest(http.MethodGet, target, nil).WithContext(ctx)
	w := &benchWriter{h: http.Header{}}
	p.ServeHTTP(w, r)
	allocs := testing.AllocsPerRun(200, func() {
		w.h, w.status = make(http.Header), 0
		p.ServeHTTP(w, r)
	})
	return w, allocs
}

// BenchmarkHandlerCacheHit is the handler's work for a cache hit, as in
// the harness's (b).
func BenchmarkHandlerCacheHit(b *testing.B) {
	p := cacheSeawall(b)
	benchHandler(b, p, "/cache/1k", http.StatusOK)
}

// BenchmarkHandlerFailFast is the handler's work for a call the breaker
// refuses, as in the harness's (c).
func BenchmarkHandlerFailFast(b *testing.B) {
	p := downSeawall(b)
	benchHandler(b, p, "/down/x", http.StatusServiceUnavailable)
}

// BenchmarkHandlerPassThrough is the handler's work for a call relayed to
// a vendor on loopback, as in the harness's (a); it includes the vendor's
// own time, so compare it with itself only.
func BenchmarkHandlerPassThrough(b *testing.B) {
	benchHandler(b, passSeawall(b), "/api/x", http.StatusOK)
}

// passSeawall is a proxy whose route /api/ relays to a vendor on
// loopback, with the policies of the harness's (a) on.
func passSeawall(tb testing.TB) *proxy.Proxy {
	up := benchUpstream(tb)
	return handlerSeawall(tb, `admin: {listen: "off"}
log: {level: error}
upstreams:
  api:
    url: `+up.URL+`
    rate_limit: {rate: 10000000/s, burst: 100000}
    retry: {max_attempts: 3}
    breaker: {min_calls: 100}
`)
}

// A relayed call starts no timer and registers no context of its own for
// the route's overall timeout: the vendor's connection keeps the deadline
// (clock.Bounded), and the client's context alone is watched. The count
// includes the loopback vendor's own allocations, which are net/http's.
func TestPassThroughAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	w, allocs := handlerAllocs(passSeawall(t), "/api/x")
	if w.status != http.StatusOK || w.h.Get("Seawall-Source") != "upstream" {
		t.Fatalf("not relayed: %d %v", w.status, w.h)
	}
	// 48 with the map made here; 50 with the relay's writer and its
	// limit on the vendor's body made a call, 60 with a
	// context.WithTimeout for the overall timeout and h1's AfterFunc on it.
	t.Logf("%.0f allocations", allocs)
	if allocs > 48 {
		t.Errorf("a relayed call made %.0f allocations, want at most 48", allocs)
	}
}

// BenchmarkHandlerPassThroughTracing is BenchmarkHandlerPassThrough with
// tracing off, and on with 1% and 100% of requests sampled, the spans
// exported over OTLP/HTTP to a receiver in this process that drops them.
func BenchmarkHandlerPassThroughTracing(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	p := passSeawall(b)
	for _, tc := range []struct{ name, ratio string }{{"off", ""}, {"sampled-1pct", "0.01"}, {"sampled-100pct", "1"}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.ratio != "" {
				b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
				b.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.ratio)
				stop, err := tracing.Setup(context.Background(), "bench", slog.New(slog.NewJSONHandler(io.Discard, nil)))
				if err != nil || !tracing.On() {
					b.Fatalf("tracing did not start: %v", err)
				}
				defer func() { _ = stop(context.Background()) }()
			}
			benchHandler(b, p, "/api/x", http.StatusOK)
		})
	}
}

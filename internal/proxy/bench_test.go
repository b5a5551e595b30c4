package proxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/testdb"
)

// benchUpstream answers a small fixed body, doing as little as it can, so
// the benchmarks measure the path in front of it.
func benchUpstream(tb testing.TB) *httptest.Server {
	body := []byte(`{"ok":true,"id":"item-42","price":1999}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func benchGet(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(c.CloseIdleConnections)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkDirect is the baseline: the client calls the upstream itself.
func BenchmarkDirect(b *testing.B) {
	benchGet(b, benchUpstream(b).URL+"/v1/items/42")
}

// BenchmarkPassThrough goes through Seawall with the limiter, breaker and
// retry all on but never triggered, and a route to match.
func BenchmarkPassThrough(b *testing.B) {
	up := benchUpstream(b)
	doc := `admin: {listen: "off"}
log: {level: warn}
upstreams:
  api:
    url: ` + up.URL + `
    headers: {Authorization: Bearer k}
    rate_limit: {rate: 10000000/s, burst: 1000}
    breaker: {min_calls: 100}
    retry: {max_attempts: 3}
    routes:
      - match: "GET /v1/items/{id}"
`
	benchGet(b, benchSeawall(b, doc)+"/api/v1/items/42")
}

// BenchmarkPassThroughCostQuota is BenchmarkPassThrough with a price and
// a daily quota: the cost of the usage bookkeeping on the request path.
func BenchmarkPassThroughCostQuota(b *testing.B) {
	up := benchUpstream(b)
	doc := `admin: {listen: "off"}
log: {level: warn}
upstreams:
  api:
    url: ` + up.URL + `
    headers: {Authorization: Bearer k}
    rate_limit: {rate: 10000000/s, burst: 1000}
    breaker: {min_calls: 100}
    retry: {max_attempts: 3}
    cost: {per_call: "0.002"}
    quota: {daily: 1000000000, monthly: 1000000000}
    routes:
      - match: "GET /v1/items/{id}"
`
	benchGet(b, benchSeawall(b, doc)+"/api/v1/items/42")
}

// BenchmarkPassThroughEndpoints is BenchmarkPassThrough with the
// upstream's calls balanced over three endpoints in three zones, with the
// health window and detector running: the cost of endpoint health,
// against the one-endpoint upstream of BenchmarkPassThrough.
func BenchmarkPassThroughEndpoints(b *testing.B) {
	ups := []string{benchUpstream(b).URL, benchUpstream(b).URL, benchUpstream(b).URL}
	doc := `admin: {listen: "off"}
log: {level: warn}
zone: a
upstreams:
  api:
    endpoints:
      - {url: "` + ups[0] + `", zone: a}
      - {url: "` + ups[1] + `", zone: b}
      - {url: "` + ups[2] + `", zone: c}
    headers: {Authorization: Bearer k}
    rate_limit: {rate: 10000000/s, burst: 1000}
    breaker: {min_calls: 100}
    retry: {max_attempts: 3}
    routes:
      - match: "GET /v1/items/{id}"
`
	benchGet(b, benchSeawall(b, doc)+"/api/v1/items/42")
}

// BenchmarkCacheHit answers a cached-mode GET from the cache, with the same
// policies on as BenchmarkPassThrough.
func BenchmarkCacheHit(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write([]byte(`{"ok":true,"id":"item-42","price":1999}`))
	}))
	b.Cleanup(up.Close)
	doc := `admin: {listen: "off"}
log: {level: warn}
upstreams:
  api:
    url: ` + up.URL + `
    mode: cached
    cache: {}
    headers: {Authorization: Bearer k}
    rate_limit: {rate: 10000000/s, burst: 1000}
    retry: {max_attempts: 3}
`
	benchGet(b, benchSeawall(b, doc)+"/api/v1/items/42")
}

// BenchmarkAsync is the async path end to end, on each store: 32 clients
// POST b.N jobs over HTTP (each 202 means the job is on disk), and the
// upstream, which allows any rate, receives them. It reports accepted/s
// for the POSTs and delivered/s from the first POST to the last delivery.
func BenchmarkAsync(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			store := b.TempDir() + "/jobs.db"
			if kind == "postgres" {
				store = testdb.PostgresURL(b)
			}
			var delivered atomic.Int64
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				delivered.Add(1)
			}))
			b.Cleanup(up.Close)
			doc := fmt.Sprintf(`admin: {listen: "off"}
log: {level: warn}
jobs: {store: %q, concurrency: 16}
upstreams:
  api:
    url: %s
    mode: async
`, store, up.URL)
			url, _ := startSeawall(b, doc)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			next := make(chan int)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < 32; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						resp, err := c.Post(url+"/api/v1/events", "application/json", strings.NewReader(fmt.Sprintf(`{"i":%d}`, i)))
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
						if resp.StatusCode != http.StatusAccepted {
							b.Errorf("status %d", resp.StatusCode)
						}
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			accepted := time.Since(start)
			for deadline := time.Now().Add(5 * time.Minute); delivered.Load() < int64(b.N); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d delivered", delivered.Load(), b.N)
				}
			}
			all := time.Since(start)
			b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted/s")
			b.ReportMetric(float64(b.N)/all.Seconds(), "delivered/s")
		})
	}
}

func mustParse(b testing.TB, doc string) *config.Config {
	cfg, err := config.Parse("bench.yaml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchSeawall starts a Seawall with the config document and returns its URL.
func benchSeawall(b *testing.B, doc string) string {
	url, _ := startSeawall(b, doc)
	return url
}

func startSeawall(b *testing.B, doc string) (string, *proxy.Proxy) {
	p, _, _ := build(b, mustParse(b, doc), slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})), proxy.NewMetrics())
	return serveSeawall(b, p, false).URL, p
}

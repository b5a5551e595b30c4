package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/proxy"
)

// benchUpstream answers a small fixed body, doing as little as it can, so
// the benchmarks measure the path in front of it.
func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"ok":true,"id":"item-42","price":1999}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
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

// benchSeawall starts a Seawall with the config document and returns its URL.
func benchSeawall(b *testing.B, doc string) string {
	cfg, err := config.Parse("bench.yaml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	p := proxy.New(cfg, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})), proxy.NewMetrics())
	sw := httptest.NewServer(p)
	b.Cleanup(sw.Close)
	return sw.URL
}

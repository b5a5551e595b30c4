// Package demo is what `seawall demo` runs beside Seawall: a scripted
// third party with four endpoints in two zones that goes through the
// troubles Seawall exists for, phase by phase, and a small load of sync,
// cached, async and deferred calls.
package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seawall/seawall/internal/routine"
)

// Phase is one stage of the script.
type Phase struct {
	Name string
	// What the console says of it.
	Says string
}

// Phases are the script, in order; it starts again after the last.
var Phases = []Phase{
	{"healthy", "every endpoint answers in 5–20 ms"},
	{"errors", "orders whose number ends in 0–2 fail with 500: their jobs retry and are dead-lettered"},
	{"brownout", "endpoint a-2 fails most calls and slows down: Seawall isolates it, its peers carry on"},
	{"outage", "every endpoint answers 503: the breaker opens, cached answers are served stale, jobs wait"},
	{"squeeze", "the vendor allows 4 calls a second and answers the rest 429 with Retry-After and quota headers: Seawall pauses"},
	{"healthy again", "every endpoint answers; the breaker closes, the isolated endpoint is probed back, jobs drain"},
}

// Vendor is the scripted third party: one HTTP server per endpoint.
type Vendor struct {
	// Endpoints are the endpoints' base URLs, by name (a-1, a-2, b-1, b-2).
	Endpoints map[string]string
	// Zones are each endpoint's zone.
	Zones map[string]string

	phase   atomic.Int64
	servers []*http.Server
	second  atomic.Int64 // the clock second of the squeeze's count
	inSec   atomic.Int64 // calls in it
}

// names are the endpoints, in order.
var names = []string{"a-1", "a-2", "b-1", "b-2"}

// StartVendor listens on loopback for each endpoint and serves it in g.
func StartVendor(g *routine.Group) (*Vendor, error) {
	v := &Vendor{Endpoints: map[string]string{}, Zones: map[string]string{}}
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			v.Close()
			return nil, fmt.Errorf("the demo vendor: %w", err)
		}
		srv := &http.Server{Handler: v.endpoint(name), ReadHeaderTimeout: 5 * time.Second}
		v.servers = append(v.servers, srv)
		v.Endpoints[name] = "http://" + ln.Addr().String()
		v.Zones[name] = name[:1]
		g.Go("demo vendor "+name, func() { _ = srv.Serve(ln) })
	}
	return v, nil
}

// Close stops every endpoint.
func (v *Vendor) Close() {
	for _, s := range v.servers {
		_ = s.Close()
	}
}

// Set moves the script to phase i.
func (v *Vendor) Set(i int) { v.phase.Store(int64(i)) }

// Phase is the script's phase now.
func (v *Vendor) Phase() int { return int(v.phase.Load()) }

// endpoint answers as the phase says endpoint name should.
func (v *Vendor) endpoint(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		phase := Phases[v.Phase()].Name
		delay := time.Duration(5+rand.IntN(15)) * time.Millisecond //nolint:gosec // a demo's jitter
		status := http.StatusOK
		switch phase {
		case "errors":
			if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/orders/") && failingOrder(r.URL.Path) {
				status = http.StatusInternalServerError
			}
		case "brownout":
			if name == "a-2" {
				delay += 300 * time.Millisecond
				if rand.IntN(10) < 8 { //nolint:gosec // a demo's chance
					status = http.StatusServiceUnavailable
				}
			}
		case "outage":
			status = http.StatusServiceUnavailable
		case "squeeze":
			if !v.allow(4) {
				w.Header().Set("Retry-After", "2")
				w.Header().Set("X-RateLimit-Limit", "4")
				w.Header().Set("X-RateLimit-Remaining", "0")
				w.Header().Set("X-RateLimit-Reset", "2")
				status = http.StatusTooManyRequests
			}
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && status == http.StatusOK && strings.Contains(r.URL.Path, "/catalog/") {
			w.Header().Set("Cache-Control", "max-age=3")
		}
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"endpoint":%q,"phase":%q,"path":%q}`, name, phase, r.URL.Path)
	})
}

// failingOrder says whether an order's number ends in 0, 1 or 2.
func failingOrder(path string) bool {
	n, err := strconv.Atoi(path[strings.LastIndex(path, "/")+1:])
	return err == nil && n%10 < 3
}

// allow admits perSecond calls in each clock second, across endpoints.
func (v *Vendor) allow(perSecond int64) bool {
	now := time.Now().Unix()
	if old := v.second.Load(); old != now && v.second.CompareAndSwap(old, now) {
		v.inSec.Store(0)
	}
	return v.inSec.Add(1) <= perSecond
}

// Config is the demo's Seawall config: the vendor as upstream shop, its
// endpoints in zones a and b (Seawall in a), a cached catalog, async
// orders, deferred reports, and quick judges so that each phase shows.
func (v *Vendor) Config(listen, admin, dataDir string) string {
	var eps strings.Builder
	for _, n := range names {
		fmt.Fprintf(&eps, "      - {url: %q, zone: %s}\n", v.Endpoints[n], v.Zones[n])
	}
	return fmt.Sprintf(`# seawall demo's config, made for the scripted vendor.
listen: %s
admin: {listen: %s}
data_dir: %q
zone: a
log: {level: warn}
jobs: {max_attempts: 3, base_delay: 500ms, max_delay: 1s}
incidents: {resolve_after: 20s}
upstreams:
  shop:
    endpoints:
%s    retry: {max_attempts: 3}
    breaker: {window: 5s, min_calls: 10, open_duration: 3s}
    health: {window: 6s, min_calls: 5, base_isolation: 20s}
    cache: {stale_if_error: 10m}
    cost: {per_call: "0.002", currency: USD}
    quota: {daily: 100000}
    routes:
      - {match: "GET /catalog/", mode: cached}
      - {match: "POST /orders/", mode: async}
      - {match: "POST /reports/", mode: deferred}
`, listen, admin, dataDir, eps.String())
}

// Load sends a small, steady load through Seawall at app (its base URL)
// until ctx ends: items (sync) and catalog pages (cached) a few a
// second, an order (async) a second, a report (deferred) every two.
func Load(ctx context.Context, g *routine.Group, app string) *sync.WaitGroup {
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	every := func(name string, d time.Duration, req func(i int) (string, string)) {
		wg.Add(1)
		g.Go("demo load "+name, func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				method, path := req(i)
				r, err := http.NewRequestWithContext(ctx, method, app+path, strings.NewReader(`{"demo":true}`))
				if err != nil {
					continue
				}
				if method == http.MethodPost {
					r.Header.Set("Content-Type", "application/json")
				}
				if resp, err := client.Do(r); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		})
	}
	every("items", 150*time.Millisecond, func(i int) (string, string) { return http.MethodGet, fmt.Sprintf("/shop/items/%d", i%50) })
	every("catalog", 200*time.Millisecond, func(i int) (string, string) { return http.MethodGet, fmt.Sprintf("/shop/catalog/%d", i%5) })
	every("orders", time.Second, func(i int) (string, string) { return http.MethodPost, fmt.Sprintf("/shop/orders/%d", i) })
	every("reports", 2*time.Second, func(i int) (string, string) { return http.MethodPost, fmt.Sprintf("/shop/reports/%d", i) })
	return &wg
}

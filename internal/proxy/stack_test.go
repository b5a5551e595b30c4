package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/server"
	"github.com/seawall/seawall/internal/testlog"
	"github.com/seawall/seawall/internal/upstream"
)

// stack is a real fake upstream behind a real Seawall, both on loopback.
type stack struct {
	t     *testing.T
	fake  *fakeapi.Server
	up    *httptest.Server
	sw    *served
	proxy *proxy.Proxy
	ups   *upstream.Set
	jobs  jobs.Store // nil unless a route is async or deferred
	m     *proxy.Metrics
	c     *http.Client
	logs  *testlog.Buffer
	clock *testClock
	cfg   *config.Config
	doc   string // the config's YAML
}

// testClock is the wall clock plus an offset a test can advance, so that
// cached entries age without waiting.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newStack starts a fake upstream named "api" and a Seawall in front of it;
// extra is YAML for the upstream (indented four spaces), and top for the root.
func newStack(t *testing.T, top, extra string) *stack {
	t.Helper()
	fake := fakeapi.New(fakeapi.Behavior{})
	up := httptest.NewServer(fake)
	t.Cleanup(up.Close)
	s := newStackURL(t, top, up.URL, extra)
	s.fake, s.up = fake, up
	fake.Now = s.clock.now
	return s
}

// newStackURL puts a Seawall in front of any upstream URL.
func newStackURL(t *testing.T, top, url, extra string) *stack {
	t.Helper()
	return newStackDoc(t, "admin: {listen: \"off\"}\n"+top+"\nupstreams:\n  api:\n    url: "+url+"\n"+extra)
}

// newStackDoc puts a Seawall with the config doc in front of its upstreams.
func newStackDoc(t *testing.T, doc string) *stack {
	t.Helper()
	s := &stack{t: t, logs: &testlog.Buffer{}, clock: &testClock{}, doc: doc}
	cfg, err := config.Parse("test.yaml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config:\n%s\n%v", doc, err)
	}
	s.cfg = cfg
	s.m = proxy.NewMetrics()
	s.proxy, s.ups, s.jobs = build(t, cfg, slog.New(slog.NewJSONHandler(s.logs, nil)), s.m, proxy.WithClock(s.clock.now))
	s.sw = serveSeawall(t, s.proxy, cfg.H2C)
	s.c = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	t.Cleanup(s.c.CloseIdleConnections)
	return s
}

// serveSeawall serves a Seawall's handler as seawall serve does: on its
// app listener's server (server.AppServer), on the engine
// SEAWALL_TEST_ENGINE names (fasthttp, the default, or net/http: CI runs
// the package's tests on each). Cleanup closes it.
func serveSeawall(tb testing.TB, h http.Handler, h2c bool) *served {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	engine := os.Getenv("SEAWALL_TEST_ENGINE")
	if engine != "" && engine != config.EngineNetHTTP && engine != config.EngineFastHTTP {
		tb.Fatalf("SEAWALL_TEST_ENGINE=%q names no engine (%s or %s)", engine, config.EngineNetHTTP, config.EngineFastHTTP)
	}
	srv := server.AppServer(h, slog.Default(), nil, h2c, engine)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close(); <-done })
	return &served{URL: "http://" + ln.Addr().String()}
}

// served is a Seawall serveSeawall serves.
type served struct{ URL string }

// build makes a Seawall's parts in seawall serve's order: the upstream
// set, the job store (started) when a route is async or deferred, then
// the handler over both. Cleanup closes them.
func build(tb testing.TB, cfg *config.Config, log *slog.Logger, m *proxy.Metrics, opts ...proxy.Option) (*proxy.Proxy, *upstream.Set, jobs.Store) {
	tb.Helper()
	ups := upstream.NewSet(cfg, upstream.Parts{Metrics: m, Log: log})
	tb.Cleanup(ups.Close)
	var js jobs.Store
	if cfg.UsesAsync() {
		var err error
		if js, err = server.OpenJobs(context.Background(), cfg, ups); err != nil {
			tb.Fatal(err)
		}
		if err := js.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = js.Stop(ctx)
		})
		opts = append(opts, proxy.WithJobs(js))
	}
	p := proxy.New(cfg, ups, opts...)
	tb.Cleanup(p.Close)
	return p, ups, js
}

// result is what the app saw of one request.
type result struct {
	status int
	header http.Header
	body   string
	err    error
}

func (s *stack) do(req *http.Request) result {
	resp, err := s.c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func (s *stack) get(path string) result {
	req, _ := http.NewRequest(http.MethodGet, s.sw.URL+path, nil)
	return s.do(req)
}

func (s *stack) post(path, body string, header map[string]string) result {
	req, _ := http.NewRequest(http.MethodPost, s.sw.URL+path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return s.do(req)
}

// metric sums the samples of seawall_<name> whose labels include the given
// name=value pairs.
func (s *stack) metric(name string, labels ...string) float64 {
	s.t.Helper()
	families, err := s.m.Registry.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "seawall_"+name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// drive offers rate requests a second for d (open model: one goroutine per
// request on a ticker), calling fn for each, and waits for all to finish.
// It sends at most rate*d requests.
func drive(rate int, d time.Duration, fn func(i int, sent time.Time)) {
	n := int(float64(rate) * d.Seconds())
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sent := <-tick.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			fn(i, sent)
		}(i)
	}
	wg.Wait()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// breakerWatch learns, from the app's side, when the breaker opened: the
// earliest send time of a request answered circuit-open.
type breakerWatch struct {
	mu       sync.Mutex
	openedAt time.Time // guarded by mu
}

// saw notes a circuit-open answer to a request sent at sent.
func (w *breakerWatch) saw(sent time.Time) {
	w.mu.Lock()
	if w.openedAt.IsZero() || sent.Before(w.openedAt) {
		w.openedAt = sent
	}
	w.mu.Unlock()
}

// opened checks that the breaker opened within window of start, and says when.
func (w *breakerWatch) opened(t *testing.T, start time.Time, window time.Duration) time.Time {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.openedAt.IsZero() {
		t.Fatal("the breaker never opened")
	}
	if d := w.openedAt.Sub(start); d > window {
		t.Errorf("the breaker opened %s into the outage, want within its %s window", d, window)
	}
	return w.openedAt
}

// probes are the calls the fake saw once the breaker had opened (allowing
// 100ms for calls already in flight): only half-open probes can be there.
func (s *stack) probes(openedAt time.Time) []fakeapi.Call {
	var out []fakeapi.Call
	for _, c := range s.fake.Calls() {
		if c.At.After(openedAt.Add(100 * time.Millisecond)) {
			out = append(out, c)
		}
	}
	return out
}

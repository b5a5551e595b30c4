package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

const cachedRoute = `    mode: cached
    retry: {max_attempts: 1}
    cache: {}
`

func (s *stack) getWith(path string, header ...string) result {
	req, _ := http.NewRequest(http.MethodGet, s.sw.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.do(req)
}

// Acceptance 1: 1,000 concurrent requests for one cold key make one
// upstream call, and all get the same body.
func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: "answer {n}", LatencyMin: fakeapi.Duration(2 * time.Second),
		Headers: map[string]string{"Cache-Control": "max-age=60"}})
	const n = 1000
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := s.get("/api/v1/rates")
			bodies[i] = fmt.Sprintf("%d %s", r.status, r.body)
		}(i)
	}
	wg.Wait()
	if calls := s.fake.Count(); calls != 1 {
		t.Errorf("%d concurrent requests made %d upstream calls, want 1", n, calls)
	}
	for i, b := range bodies {
		if b != "200 answer 1" {
			t.Fatalf("request %d got %q, want 200 answer 1", i, b)
		}
	}
	t.Logf("saved %v upstream calls", s.metric("cache_upstream_calls_saved_total"))
}

// Acceptance 2: with the upstream down (503s, breaker open, connection
// refused), a key cached 5 minutes ago with stale-if-error of 10 minutes is
// served stale; a key never cached gets the normal error.
func TestCacheServesStaleIfError(t *testing.T) {
	s := newStack(t, "", `    mode: cached
    retry: {max_attempts: 1}
    breaker: {min_calls: 3, failure_rate: 50, open_duration: 1h}
    cache: {}
`)
	s.fake.Set(fakeapi.Behavior{Body: "good {n}", Headers: map[string]string{"Cache-Control": "max-age=60, stale-if-error=600"}})
	if r := s.get("/api/v1/prices"); r.body != "good 1" {
		t.Fatalf("priming: %d %q", r.status, r.body)
	}
	s.clock.advance(5 * time.Minute)
	checkStale := func(phase string) {
		t.Helper()
		r := s.get("/api/v1/prices")
		cs := r.header.Get("Cache-Status")
		if r.status != 200 || r.body != "good 1" || !strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, "stale-if-error") {
			t.Errorf("%s: got %d %q Cache-Status %q, want the stale body marked stale", phase, r.status, r.body, cs)
		}
	}

	s.fake.Set(fakeapi.Behavior{Down: true})
	checkStale("upstream 503")
	if r := s.get("/api/v1/never"); r.status != 503 || r.header.Get("Seawall-Source") != "upstream" {
		t.Errorf("uncached key during 503s: %d from %q, want the upstream's 503", r.status, r.header.Get("Seawall-Source"))
	}
	s.get("/api/v1/never")
	eventually(t, 2*time.Second, "breaker open", func() bool { return s.ups.Get("api").Breaker.State().String() == "open" })
	calls := s.fake.Count()
	checkStale("breaker open")
	if r := s.get("/api/v1/never"); r.status != 503 || problemOf(t, r)["type"] != "urn:seawall:problem:circuit-open" {
		t.Errorf("uncached key with breaker open: %d %s", r.status, r.body)
	}
	if s.fake.Count() != calls {
		t.Error("the upstream was called while the breaker was open")
	}

	s2 := newStack(t, "", cachedRoute)
	s2.fake.Set(fakeapi.Behavior{Body: "good {n}", Headers: map[string]string{"Cache-Control": "max-age=60, stale-if-error=600"}})
	s2.get("/api/v1/prices")
	s2.clock.advance(5 * time.Minute)
	s2.up.Close() // connection refused
	s = s2
	checkStale("connection refused")
	if r := s.get("/api/v1/never"); r.status != 502 || problemOf(t, r)["type"] != "urn:seawall:problem:upstream-unreachable" {
		t.Errorf("uncached key with the upstream gone: %d %s", r.status, r.body)
	}
	s.clock.advance(10 * time.Minute)
	if r := s.get("/api/v1/prices"); r.status != 502 {
		t.Errorf("past stale-if-error: %d %q, want the error", r.status, r.body)
	}
}

// Acceptance 3: after expiry, stale-while-revalidate answers at once from
// the stale entry and exactly one background revalidation reaches the
// upstream; its 304 refreshes the entry.
func TestCacheStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: "v1", Headers: map[string]string{"Cache-Control": "max-age=60, stale-while-revalidate=120", "ETag": `"e1"`}})
	s.get("/api/v1/catalog")
	s.clock.advance(90 * time.Second)
	s.fake.Set(fakeapi.Behavior{Status: 304, LatencyMin: fakeapi.Duration(500 * time.Millisecond),
		Headers: map[string]string{"Cache-Control": "max-age=60, stale-while-revalidate=120", "ETag": `"e1"`}})
	s.fake.Reset()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.get("/api/v1/catalog")
			if r.status != 200 || r.body != "v1" || !strings.Contains(r.header.Get("Cache-Status"), "stale-while-revalidate") {
				t.Errorf("during revalidation: %d %q %q, want the stale v1 at once", r.status, r.body, r.header.Get("Cache-Status"))
			}
		}()
	}
	wg.Wait()
	if n := s.fake.Count(); n > 1 {
		t.Fatalf("%d calls while the upstream takes 500ms to revalidate; want one", n)
	}
	eventually(t, 3*time.Second, "the revalidated entry is fresh", func() bool {
		cs := s.get("/api/v1/catalog").header.Get("Cache-Status")
		return strings.HasPrefix(cs, "Seawall; hit; ttl=") && !strings.Contains(cs, "stale")
	})
	calls := s.fake.Calls()
	if len(calls) != 1 || calls[0].Header.Get("If-None-Match") != `"e1"` {
		t.Fatalf("upstream calls %d, want exactly one conditional revalidation", len(calls))
	}
	// The 304 restarted the entry's age: it was 90s old before. (Not 0
	// exactly: a slow run may take a second or more to get here.)
	r := s.get("/api/v1/catalog")
	if age, err := strconv.Atoi(r.header.Get("Age")); r.body != "v1" || err != nil || age >= 30 || !strings.Contains(r.header.Get("Cache-Status"), "hit; ttl=") {
		t.Errorf("after 304: %q Age %q %q, want fresh v1 with its age restarted", r.body, r.header.Get("Age"), r.header.Get("Cache-Status"))
	}
}

// Acceptance 4: different credentials never see each other's responses,
// even public ones; Vary is honoured.
func TestCacheTenantSafetyAndVary(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: "for caller {n}", Headers: map[string]string{"Cache-Control": "public, max-age=60", "Vary": "Accept"}})
	alice := []string{"Authorization", "Bearer alice", "Accept", "application/json"}
	bob := []string{"Authorization", "Bearer bob", "Accept", "application/json"}
	aliceXML := []string{"Authorization", "Bearer alice", "Accept", "application/xml"}
	steps := []struct {
		who  []string
		want string
	}{
		{alice, "for caller 1"}, {bob, "for caller 2"}, {alice, "for caller 1"}, {bob, "for caller 2"},
		{aliceXML, "for caller 3"}, {alice, "for caller 1"}, {aliceXML, "for caller 3"},
	}
	for i, st := range steps {
		if r := s.getWith("/api/v1/account", st.who...); r.body != st.want {
			t.Errorf("step %d (%s, %s): got %q, want %q", i, st.who[1], st.who[3], r.body, st.want)
		}
	}
	if n := s.fake.Count(); n != 3 {
		t.Errorf("upstream calls = %d, want 3 (alice json, bob json, alice xml)", n)
	}
}

// Acceptance 5: filling the cache with twice (and ten times) its byte
// limit keeps it under the limit, and the heap does not grow with the fill.
func TestCacheStaysWithinBytes(t *testing.T) {
	// Not parallel: it reads the process's heap, which the package's
	// parallel tests would grow too (it failed once in CI's race run, at
	// 33 MiB, with the cache at 1 MiB).
	s := newStack(t, "cache: {max_bytes: 1MiB, max_entry: 64KiB}", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: strings.Repeat("z", 32<<10), Headers: map[string]string{"Cache-Control": "max-age=600"}})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			if r := s.get(fmt.Sprintf("/api/v1/blob/%d", i)); r.status != 200 {
				t.Fatalf("blob %d: %d", i, r.status)
			}
			if b := s.metric("cache_bytes"); b > 1<<20 {
				t.Fatalf("after %d entries the cache holds %v bytes, over 1MiB", i+1, b)
			}
		}
	}
	fill(0, 64) // 2 MiB of bodies
	afterTwice := heap()
	fill(64, 320) // 10 MiB in all
	afterTenTimes := heap()
	t.Logf("heap after 2x fill %d KiB, after 10x %d KiB; cache %v bytes, %v evictions",
		afterTwice>>10, afterTenTimes>>10, s.metric("cache_bytes"), s.metric("cache_evictions_total"))
	if afterTenTimes > afterTwice+4<<20 {
		t.Errorf("heap grew from %d to %d KiB while the cache stayed bounded", afterTwice>>10, afterTenTimes>>10)
	}
	if s.metric("cache_evictions_total") == 0 {
		t.Error("no evictions")
	}

	s.fake.Set(fakeapi.Behavior{Body: strings.Repeat("L", 128<<10), Headers: map[string]string{"Cache-Control": "max-age=600"}})
	s.fake.Reset()
	for i := 0; i < 2; i++ {
		r := s.get("/api/v1/large")
		if r.status != 200 || len(r.body) != 128<<10 || !strings.Contains(r.header.Get("Cache-Status"), "too-large") {
			t.Errorf("oversized: %d, %d bytes, %q; want it whole and uncached", r.status, len(r.body), r.header.Get("Cache-Status"))
		}
	}
	if n := s.fake.Count(); n != 2 {
		t.Errorf("oversized response fetched %d times for 2 requests, want 2 (not cached)", n)
	}
}

// Acceptance 6: each directive, response and request side, decides whether
// the second request reaches the upstream.
func TestCacheDirectives(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	future := func() string { return s.clock.now().Add(time.Hour).UTC().Format(http.TimeFormat) }
	tests := []struct {
		name      string
		resp      map[string]string
		status    int           // the upstream's status; 0 for 200
		req2      string        // Cache-Control of the second request
		advance   time.Duration // between the two requests
		wantCalls int           // upstream calls for both requests
	}{
		{"max-age fresh", map[string]string{"Cache-Control": "max-age=60"}, 0, "", 0, 1},
		{"Age beyond max-age", map[string]string{"Cache-Control": "max-age=60", "Age": "100"}, 0, "", 0, 2},
		{"no heuristic for 500", map[string]string{"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 500, "", 0, 2},
		{"explicit max-age on 500", map[string]string{"Cache-Control": "max-age=60"}, 500, "", 0, 1},
		{"proxy-revalidate expired", map[string]string{"Cache-Control": "max-age=60, proxy-revalidate"}, 0, "max-stale=600", 2 * time.Minute, 2},
		{"max-age expired", map[string]string{"Cache-Control": "max-age=60"}, 0, "", 2 * time.Minute, 2},
		{"s-maxage over max-age", map[string]string{"Cache-Control": "max-age=0, s-maxage=60"}, 0, "", 0, 1},
		{"no-store", map[string]string{"Cache-Control": "no-store, max-age=60"}, 0, "", 0, 2},
		{"private", map[string]string{"Cache-Control": "private, max-age=60"}, 0, "", 0, 2},
		{"no-cache response", map[string]string{"Cache-Control": "no-cache, max-age=60", "ETag": `"x"`}, 0, "", 0, 2},
		{"must-revalidate expired", map[string]string{"Cache-Control": "max-age=60, must-revalidate"}, 0, "max-stale=600", 2 * time.Minute, 2},
		{"proxy-revalidate fresh", map[string]string{"Cache-Control": "max-age=60, proxy-revalidate"}, 0, "", 0, 1},
		{"Expires future", map[string]string{"Expires": future()}, 0, "", 0, 1},
		{"Expires invalid", map[string]string{"Expires": "0"}, 0, "", 0, 2},
		{"heuristic from Last-Modified", map[string]string{"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 0, "", 0, 1},
		{"request no-cache", map[string]string{"Cache-Control": "max-age=60"}, 0, "no-cache", 0, 2},
		{"request no-store", map[string]string{"Cache-Control": "max-age=60"}, 0, "no-store", 0, 1},
		{"request max-age", map[string]string{"Cache-Control": "max-age=60"}, 0, "max-age=5", 30 * time.Second, 2},
		{"request min-fresh", map[string]string{"Cache-Control": "max-age=60"}, 0, "min-fresh=50", 30 * time.Second, 2},
		{"request max-stale", map[string]string{"Cache-Control": "max-age=60"}, 0, "max-stale=120", 2 * time.Minute, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/api/v1/d/%d", i)
			s.fake.Set(fakeapi.Behavior{Body: "b{n}", Status: tt.status, Headers: tt.resp})
			s.fake.Reset()
			s.get(path)
			s.clock.advance(tt.advance)
			r := s.getWith(path, "Cache-Control", tt.req2)
			if want := max(tt.status, 200); r.status != want {
				t.Fatalf("second request: %d %s, want %d", r.status, r.body, want)
			}
			if got := s.fake.Count(); got != tt.wantCalls {
				t.Errorf("upstream calls = %d, want %d (Cache-Status %q)", got, tt.wantCalls, r.header.Get("Cache-Status"))
			}
		})
	}
	t.Run("only-if-cached", func(t *testing.T) {
		s.fake.Reset()
		r := s.getWith("/api/v1/d/cold", "Cache-Control", "only-if-cached")
		if r.status != 504 || problemOf(t, r)["type"] != "urn:seawall:problem:not-cached" || s.fake.Count() != 0 {
			t.Errorf("got %d %s with %d calls, want 504 not-cached and none", r.status, r.body, s.fake.Count())
		}
	})
	t.Run("mode by header", func(t *testing.T) {
		s2 := newStack(t, "", "    cache: {ttl: 1m}\n")
		s2.getWith("/api/x", "Seawall-Mode", "cached")
		s2.getWith("/api/x", "Seawall-Mode", "cached")
		s2.get("/api/x") // the route's default mode is sync
		if n := s2.fake.Count(); n != 2 {
			t.Errorf("upstream calls = %d, want 2: one cached miss then a hit, then one sync call", n)
		}
	})
}

// The route names what forms the key: some query parameters, some headers,
// and identity headers whose values must match. Header names count in any
// case, as HTTP's do.
func TestCacheKeyConfig(t *testing.T) {
	s := newStack(t, "", `    mode: cached
    cache:
      ttl: 1m
      key_query: [id]
      key_headers: [x-region]
      identity_headers: [X-API-USER]
`)
	s.fake.Set(fakeapi.Behavior{Body: "r{n}"})
	steps := []struct {
		path string
		hdr  []string
		want string
	}{
		{"/api/v1/x?id=1&utm=a", nil, "r1"},
		{"/api/v1/x?utm=b&id=1", nil, "r1"}, // utm is not in the key
		{"/api/v1/x?id=2", nil, "r2"},
		{"/api/v1/x?id=1", []string{"X-Region", "eu"}, "r3"},
		{"/api/v1/x?id=1", []string{"X-Api-User", "u1"}, "r4"},
		{"/api/v1/x?id=1", []string{"X-Api-User", "u2"}, "r5"},
		{"/api/v1/x?id=1", []string{"X-Api-User", "u1"}, "r4"},
	}
	for i, st := range steps {
		if r := s.getWith(st.path, st.hdr...); r.body != st.want {
			t.Errorf("step %d %s %v: got %q, want %q", i, st.path, st.hdr, r.body, st.want)
		}
	}
}

// A cached answer reaches the app with its Content-Length and unchunked,
// whether Seawall names the length (a large body) or leaves it to the
// server (one that fits net/http's buffer), on the fill and on the hit.
func TestCachedAnswersCarryTheirLength(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	for _, n := range []int{1, 10, 2047, 2048, 2049, 5000, 70000} {
		s.fake.Set(fakeapi.Behavior{Body: strings.Repeat("x", n), Headers: map[string]string{"Cache-Control": "max-age=60"}})
		path := fmt.Sprintf("/api/v1/len/%d", n)
		for _, want := range []string{"stored", "hit"} {
			req, _ := http.NewRequest(http.MethodGet, s.sw.URL+path, nil)
			resp, err := s.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			cs := resp.Header.Get("Cache-Status")
			if !strings.Contains(cs, want) || len(b) != n {
				t.Fatalf("%d bytes: Cache-Status %q and %d bytes, want %s and %d", n, cs, len(b), want, n)
			}
			if resp.ContentLength != int64(n) || len(resp.TransferEncoding) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(n) {
				t.Errorf("%d bytes, %s: Content-Length %q (%d), Transfer-Encoding %q; want %d and not chunked",
					n, want, resp.Header.Get("Content-Length"), resp.ContentLength, resp.TransferEncoding, n)
			}
		}
	}
}

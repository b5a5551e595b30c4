package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// countingVendor answers every GET with header h and body, counting the
// calls and keeping the Range each carried.
type countingVendor struct {
	mu     sync.Mutex
	ranges []string
}

func (v *countingVendor) serve(t *testing.T, h map[string]string, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		v.ranges = append(v.ranges, r.Header.Get("Range"))
		v.mu.Unlock()
		for k, val := range h {
			w.Header().Set(k, val)
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (v *countingVendor) calls() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.ranges...)
}

// Caching, RFC 9110 §14: a Range request is answered from a stored
// complete 200 without a call: one byte range as 206 with Content-Range,
// none satisfiable as 416, several ranges or an If-Range that does not
// hold as the whole 200. Without a stored whole, it passes through and
// nothing is stored. Before, every Range request passed through.
func TestRangeAnsweredFromTheCache(t *testing.T) {
	t.Parallel()
	vendor := &countingVendor{}
	up := vendor.serve(t, map[string]string{"Cache-Control": "max-age=3600", "ETag": `"v1"`, "Content-Type": "text/plain"}, "0123456789")
	s := newStackURL(t, "", up.URL, "    mode: cached\n    cache: {}\n")
	get := func(h map[string]string) result {
		req, _ := http.NewRequest(http.MethodGet, s.sw.URL+"/api/file", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		return s.do(req)
	}
	if r := get(map[string]string{"Range": "bytes=0-1"}); r.status != 200 || r.body != "0123456789" || !strings.Contains(r.header.Get("Cache-Status"), "detail=range") {
		t.Fatalf("a Range miss: %d %q %v, want the vendor's own answer passed through", r.status, r.body, r.header)
	}
	if got := vendor.calls(); len(got) != 1 || got[0] != "bytes=0-1" {
		t.Fatalf("the vendor saw %q, want the miss's Range passed on", got)
	}
	if r := get(nil); r.status != 200 || r.header.Get("Cache-Status") == "" || strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("the first whole GET: %d %v, want a miss that stores (the Range miss stored nothing)", r.status, r.header)
	}
	for _, tc := range []struct {
		h            map[string]string
		status       int
		body, cRange string
	}{
		{map[string]string{"Range": "bytes=0-1"}, 206, "01", "bytes 0-1/10"},
		{map[string]string{"Range": "bytes=1-"}, 206, "123456789", "bytes 1-9/10"},
		{map[string]string{"Range": "bytes=-3"}, 206, "789", "bytes 7-9/10"},
		{map[string]string{"Range": "bytes=5-100"}, 206, "56789", "bytes 5-9/10"},
		{map[string]string{"Range": "bytes=20-"}, 416, "", "bytes */10"},
		{map[string]string{"Range": "bytes=0-1,4-5"}, 200, "0123456789", ""},
		{map[string]string{"Range": "lines=0-1"}, 200, "0123456789", ""},
		{map[string]string{"Range": "bytes=0-1", "If-Range": `"v1"`}, 206, "01", "bytes 0-1/10"},
		{map[string]string{"Range": "bytes=0-1", "If-Range": `"v0"`}, 200, "0123456789", ""},
		{map[string]string{"Range": "bytes=0-1", "If-None-Match": `"v1"`}, 304, "", ""},
	} {
		r := get(tc.h)
		if r.status != tc.status || r.body != tc.body || r.header.Get("Content-Range") != tc.cRange {
			t.Errorf("%v: %d %q Content-Range %q, want %d %q %q", tc.h, r.status, r.body, r.header.Get("Content-Range"), tc.status, tc.body, tc.cRange)
		}
		if tc.status != 304 && !strings.Contains(r.header.Get("Cache-Status"), "hit") {
			t.Errorf("%v: Cache-Status %q, want a hit", tc.h, r.header.Get("Cache-Status"))
		}
		if tc.status == 206 && r.header.Get("ETag") != `"v1"` {
			t.Errorf("%v: the part lost the stored ETag: %v", tc.h, r.header)
		}
	}
	if n := len(vendor.calls()); n != 2 {
		t.Errorf("the vendor was called %d times, want 2: every part came from the cache", n)
	}
}

// Caching, RFC 9213 §2.2: a cache policy's targeted_fields name the
// fields that govern it in place of Cache-Control, the first present
// winning: a field of Seawall's own before CDN-Cache-Control, or none.
func TestTargetedFieldsAreConfigurable(t *testing.T) {
	t.Parallel()
	h := map[string]string{"Cache-Control": "no-store", "CDN-Cache-Control": "no-store", "Seawall-Cache-Control": "max-age=60"}
	for _, tc := range []struct {
		policy string
		calls  int // of two GETs
	}{
		{"{}", 2}, // CDN-Cache-Control: no-store governs
		{"{targeted_fields: [Seawall-Cache-Control, CDN-Cache-Control]}", 1},
		{"{targeted_fields: []}", 2}, // Cache-Control: no-store governs
	} {
		vendor := &countingVendor{}
		up := vendor.serve(t, h, "x")
		s := newStackURL(t, "", up.URL, "    mode: cached\n    cache: "+tc.policy+"\n")
		for range 2 {
			if r := s.get("/api/x"); r.status != 200 {
				t.Fatalf("%s: %d %s", tc.policy, r.status, r.body)
			}
		}
		if n := len(vendor.calls()); n != tc.calls {
			t.Errorf("cache %s: the vendor was called %d times for two GETs, want %d", tc.policy, n, tc.calls)
		}
	}
	// With []: CDN-Cache-Control is ignored, Cache-Control governs.
	vendor := &countingVendor{}
	up := vendor.serve(t, map[string]string{"Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store"}, "x")
	s := newStackURL(t, "", up.URL, "    mode: cached\n    cache: {targeted_fields: []}\n")
	s.get("/api/x")
	s.get("/api/x")
	if n := len(vendor.calls()); n != 1 {
		t.Errorf("targeted_fields []: the vendor was called %d times, want 1 (CDN-Cache-Control ignored)", n)
	}
}

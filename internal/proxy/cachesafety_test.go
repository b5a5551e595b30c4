package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/testcallers"
)

// Cache correctness, item 1: Cookie is part of the caller's identity, so
// one session's answer never reaches another (or a caller without one);
// a response that sets a cookie is not stored, and with store_set_cookie
// it is stored without the cookie, which is never replayed.
func TestCacheKeepsCookiesApart(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: "answer {n}", Headers: map[string]string{"Cache-Control": "max-age=60"}})
	alice := s.getWith("/api/v1/me", "Cookie", "session=alice")
	for _, h := range [][]string{{"Cookie", "session=bob"}, {}, {"Cookie", "session=alice; theme=dark"}} {
		if r := s.getWith("/api/v1/me", h...); r.body == alice.body {
			t.Errorf("a request with %v got the answer fetched for session=alice: %q", h, r.body)
		}
	}
	if r := s.getWith("/api/v1/me", "Cookie", "session=alice"); r.body != alice.body || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Errorf("the same cookie again: %q %s, want a hit with %q", r.body, r.header.Get("Cache-Status"), alice.body)
	}

	s.fake.Set(fakeapi.Behavior{Body: "cookie {n}", Headers: map[string]string{"Cache-Control": "max-age=60", "Set-Cookie": "token=secret-{n}"}})
	first := s.get("/api/v1/login")
	second := s.get("/api/v1/login")
	if first.header.Get("Set-Cookie") == "" {
		t.Fatal("the caller who caused the Set-Cookie did not get it")
	}
	if second.body == first.body || strings.Contains(second.header.Get("Cache-Status"), "hit") {
		t.Errorf("a response that sets a cookie was replayed to the next caller: %q (%s)", second.body, second.header.Get("Cache-Status"))
	}

	opt := newStack(t, "", "    mode: cached\n    retry: {max_attempts: 1}\n    cache: {store_set_cookie: true}\n")
	opt.fake.Set(fakeapi.Behavior{Body: "cookie {n}", Headers: map[string]string{"Cache-Control": "max-age=60", "Set-Cookie": "token=secret-{n}"}})
	first = opt.get("/api/v1/login")
	second = opt.get("/api/v1/login")
	if first.header.Get("Set-Cookie") == "" || second.body != first.body || second.header.Get("Set-Cookie") != "" {
		t.Errorf("with store_set_cookie: first Set-Cookie %q, then %q with Set-Cookie %q; want it stored, the cookie never replayed",
			first.header.Get("Set-Cookie"), second.body, second.header.Get("Set-Cookie"))
	}
}

// Cache correctness, item 2: a successful unsafe request to a URI, sync or
// delivered as a job, drops every stored answer for it (RFC 9111 §4.4),
// for every caller, and for what its Location names; a failed one does
// not.
func TestCacheInvalidatedByWrites(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: "v{n}", Headers: map[string]string{"Cache-Control": "public, max-age=600"}})
	get := func(path, who string) string { return s.getWith(path, "Authorization", "Bearer "+who).body }
	before := map[string]string{}
	for _, who := range []string{"alice", "bob"} {
		before[who] = get("/api/v1/items/1", who)
		if again := get("/api/v1/items/1", who); again != before[who] {
			t.Fatalf("not cached to begin with: %q then %q", before[who], again)
		}
	}
	other := get("/api/v1/items/2", "alice")
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodPost} {
		req, _ := http.NewRequest(method, s.sw.URL+"/api/v1/items/1", strings.NewReader(`{}`))
		if r := s.do(req); r.status != 200 {
			t.Fatalf("%s: %d", method, r.status)
		}
		for _, who := range []string{"alice", "bob"} {
			if now := get("/api/v1/items/1", who); now == before[who] {
				t.Errorf("after a %s, %s still got the old answer %q", method, who, now)
			} else {
				before[who] = now
			}
		}
	}
	if now := get("/api/v1/items/2", "alice"); now != other {
		t.Errorf("another URI was dropped too: %q, was %q", now, other)
	}
	// Location names another resource of the upstream: dropped too.
	s.fake.Set(fakeapi.Behavior{Body: "v{n}", Headers: map[string]string{"Cache-Control": "public, max-age=600", "Location": "/v1/items/2"}})
	req, _ := http.NewRequest(http.MethodPost, s.sw.URL+"/api/v1/items", strings.NewReader(`{}`))
	s.do(req)
	if now := get("/api/v1/items/2", "alice"); now == other {
		t.Errorf("the resource named by Location was not dropped: %q", now)
	}
	// A failed write changes nothing.
	kept := get("/api/v1/items/2", "alice")
	s.fake.Set(fakeapi.Behavior{Status: 409, Body: "conflict"})
	req, _ = http.NewRequest(http.MethodPut, s.sw.URL+"/api/v1/items/2", strings.NewReader(`{}`))
	s.do(req)
	s.fake.Set(fakeapi.Behavior{Body: "v{n}", Headers: map[string]string{"Cache-Control": "public, max-age=600"}})
	if now := get("/api/v1/items/2", "alice"); now != kept {
		t.Errorf("a failed PUT dropped the stored answer: %q, was %q", now, kept)
	}
}

// Cache correctness, item 2 on the async path: a job's successful
// delivery of an unsafe request drops the stored answers for its URI.
func TestCacheInvalidatedByDeliveredJobs(t *testing.T) {
	s := newAsyncStack(t, t.TempDir()+"/jobs.db", "cached", "", "    retry: {max_attempts: 1}\n    cache: {}\n    routes:\n      - {name: writes, match: \"PUT /v1/items/{id}\", mode: async}\n")
	s.fake.Set(fakeapi.Behavior{Body: "v{n}", Headers: map[string]string{"Cache-Control": "max-age=600"}})
	before := s.get("/api/v1/items/1").body
	req, _ := http.NewRequest(http.MethodPut, s.sw.URL+"/api/v1/items/1", strings.NewReader(`{}`))
	r := s.do(req)
	if r.status != 202 {
		t.Fatalf("PUT: %d", r.status)
	}
	s.waitJob(t, r.header.Get("Location"), "succeeded")
	if now := s.get("/api/v1/items/1").body; now == before {
		t.Errorf("after the PUT was delivered, the old answer %q is still served", now)
	}
}

// Cache correctness, items 3 and 4: a cached route keeps the response
// size limit that sync mode keeps (502, whether or not it could be
// stored); a 206, or any answer to a Range request, is never stored as a
// complete response.
func TestCacheKeepsTheSizeLimitAndStoresNoParts(t *testing.T) {
	s := newStack(t, "limits: {max_response_body: 1KiB}\ncache: {max_entry: 1MiB}", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: strings.Repeat("x", 8<<10), Headers: map[string]string{"Cache-Control": "max-age=600"}})
	if r := s.get("/api/v1/big"); r.status != 502 || len(r.body) >= 8<<10 {
		t.Errorf("an 8 KiB answer over a 1 KiB limit on a cached route: %d with %d bytes, want 502 as on sync routes", r.status, len(r.body))
	}
	if r := s.get("/api/v1/big"); r.status != 502 {
		t.Errorf("the oversized answer was stored: then %d", r.status)
	}

	p := newStack(t, "", cachedRoute)
	p.fake.Set(fakeapi.Behavior{Status: 206, Body: "part {n}", Headers: map[string]string{"Cache-Control": "max-age=600", "Content-Range": "bytes 0-5/100"}})
	p.get("/api/v1/file")
	p.fake.Set(fakeapi.Behavior{Body: "whole {n}", Headers: map[string]string{"Cache-Control": "max-age=600"}})
	if r := p.get("/api/v1/file"); r.status != 200 || !strings.HasPrefix(r.body, "whole") {
		t.Errorf("a 206 was stored and served as the whole: %d %q", r.status, r.body)
	}
	p.fake.Set(fakeapi.Behavior{Status: 206, Body: "range {n}", Headers: map[string]string{"Cache-Control": "max-age=600"}})
	if r := p.getWith("/api/v1/other", "Range", "bytes=0-5"); r.status != 206 {
		t.Errorf("a Range request on a cached route: %d, want the vendor's 206 passed through", r.status)
	}
	if calls := p.fake.Calls(); calls[len(calls)-1].Header.Get("Range") != "bytes=0-5" {
		t.Error("the Range header did not reach the vendor")
	}
	p.fake.Set(fakeapi.Behavior{Body: "whole {n}", Headers: map[string]string{"Cache-Control": "max-age=600"}})
	if r := p.get("/api/v1/other"); !strings.HasPrefix(r.body, "whole") {
		t.Errorf("the answer to a Range request was stored: %q", r.body)
	}
}

// Cache correctness, item 8: the app's own conditional requests are
// answered from the cache, 304 when met, on a hit and on the miss that
// fills the entry (the vendor is asked for the whole answer); ETag
// decides over dates.
func TestCacheAnswersTheAppsConditions(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	lm := "Sun, 06 Nov 1994 08:49:37 GMT"
	s.fake.Set(fakeapi.Behavior{Body: "v{n}", Headers: map[string]string{"Cache-Control": "max-age=600", "ETag": `"e1"`, "Last-Modified": lm}})
	miss := s.getWith("/api/v1/doc", "If-None-Match", `"e1"`)
	if miss.status != 304 || miss.body != "" || miss.header.Get("ETag") != `"e1"` {
		t.Errorf("a miss whose condition the fetched answer meets: %d %q", miss.status, miss.body)
	}
	if c := s.fake.Calls(); len(c) != 1 || c[0].Header.Get("If-None-Match") != "" {
		t.Fatalf("the vendor should get one unconditional request: %v", c)
	}
	for _, tc := range []struct {
		h    []string
		want int
	}{
		{[]string{"If-None-Match", `W/"e1"`}, 304},
		{[]string{"If-None-Match", `"e0"`}, 200},
		{[]string{"If-Modified-Since", lm}, 304},
		{[]string{"If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT"}, 200},
		{nil, 200},
	} {
		r := s.getWith("/api/v1/doc", tc.h...)
		if r.status != tc.want || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
			t.Errorf("%v: %d (%s), want %d from the cache", tc.h, r.status, r.header.Get("Cache-Status"), tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, s.sw.URL+"/api/v1/doc", nil)
	req.Header.Set("If-None-Match", `"e0"`)
	req.Header.Set("If-Modified-Since", lm)
	if r := s.do(req); r.status != 200 || r.body != "v1" {
		t.Errorf("ETag should decide over the date: %d %q", r.status, r.body)
	}
	if n := s.fake.Count(); n != 1 {
		t.Errorf("the vendor got %d calls, want 1", n)
	}
}

// Cache correctness, item 9: equivalent values of a field the answer
// varies on share an entry; different ones do not.
func TestCacheVaryNormalisesEquivalentValues(t *testing.T) {
	s := newStack(t, "", cachedRoute)
	s.fake.Set(fakeapi.Behavior{Body: "v{n}", Headers: map[string]string{"Cache-Control": "max-age=600", "Vary": "Accept-Encoding"}})
	first := s.getWith("/api/v1/v", "Accept-Encoding", "gzip, br")
	for _, v := range []string{"gzip,br", " gzip ,  br", "GZIP, BR"} {
		if r := s.getWith("/api/v1/v", "Accept-Encoding", v); r.body != first.body {
			t.Errorf("Accept-Encoding %q: %q, want the entry stored for \"gzip, br\" (%q)", v, r.body, first.body)
		}
	}
	if r := s.getWith("/api/v1/v", "Accept-Encoding", "br"); r.body == first.body {
		t.Error("a different Accept-Encoding shared the entry")
	}
}

// Cache correctness, acceptance 2: callers told apart in any of these
// ways never get one another's answer, even one marked public; callers
// alike do share.
func TestCacheNeverCrossesCallers(t *testing.T) {
	s := newStack(t, "", testcallers.Policy)
	s.fake.Set(fakeapi.Behavior{Body: "answer {n}", Headers: map[string]string{"Cache-Control": "public, max-age=600"}})
	seen := map[string]string{}
	for _, w := range testcallers.CacheWays() {
		r := s.getWith("/api/v1/profile"+w.Query, w.Header...)
		if r.status != 200 {
			t.Fatalf("%s: %d", w.Name, r.status)
		}
		if who, ok := seen[r.body]; ok {
			t.Errorf("%s got %q, the answer fetched for %s", w.Name, r.body, who)
		}
		seen[r.body] = w.Name
		// The same caller again is served its own answer from the cache.
		if again := s.getWith("/api/v1/profile"+w.Query, w.Header...); again.body != r.body {
			t.Errorf("%s again: %q, want its own %q", w.Name, again.body, r.body)
		}
	}
	// A query parameter outside key_query does not tell callers apart.
	if r := s.getWith("/api/v1/profile?account=1&utm=x"); seen[r.body] != "account query" {
		t.Errorf("an ignored query parameter made a new entry: %q", r.body)
	}
}

// Cache correctness, item 7: a vendor's 103 Early Hints reach the app
// before the answer, on sync and cached routes, and are never stored.
func TestInterimResponsesRelayedNotStored(t *testing.T) {
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=600")
		_, _ = w.Write([]byte("final"))
	}))
	defer vendor.Close()
	for _, mode := range []string{"sync", "cached"} {
		s := newStackURL(t, "", vendor.URL, "    mode: "+mode+"\n    retry: {max_attempts: 1}\n    cache: {}\n")
		get := func() (hints []string, resp *http.Response, body string) {
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, s.sw.URL+"/api/v1/page", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return hints, resp, string(b)
		}
		hints, resp, body := get()
		if len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" || body != "final" || resp.Header.Get("Link") != "" {
			t.Errorf("%s: 1xx %v, final %d %q with Link %q; want the 103 relayed, then the answer without its fields", mode, hints, resp.StatusCode, body, resp.Header.Get("Link"))
		}
		// An HTTP/1.0 app gets no 1xx (RFC 9110 §15.2): the first status
		// line it reads is the final answer's.
		if mode == "sync" {
			c, err := net.Dial("tcp", strings.TrimPrefix(s.sw.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "GET /api/v1/page HTTP/1.0\r\nHost: s\r\n\r\n")
			raw, _ := io.ReadAll(c)
			_ = c.Close()
			if first, _, _ := strings.Cut(string(raw), "\r\n"); !strings.HasSuffix(first, " 200 OK") || strings.Contains(string(raw), " 103 ") {
				t.Errorf("HTTP/1.0 app read %q, want the 200 alone", raw)
			}
		}
		if mode == "cached" {
			hints, resp, _ = get()
			if len(hints) != 0 || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") || resp.Header.Get("Link") != "" {
				t.Errorf("cached hit: 1xx %v, %s, Link %q; want a hit without the 103", hints, resp.Header.Get("Cache-Status"), resp.Header.Get("Link"))
			}
		}
	}
}

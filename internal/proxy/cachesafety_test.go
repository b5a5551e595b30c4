package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/seawall/seawall/internal/fakeapi"
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

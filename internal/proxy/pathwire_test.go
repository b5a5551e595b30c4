package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/vendortest"
)

// rawGet sends a GET for target exactly as given, on a connection of its
// own, and returns the answer.
func rawGet(t *testing.T, addr, target string) *http.Response {
	t.Helper()
	resp := rawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: seawall\r\nConnection: close\r\n\r\n", false)
	if resp == nil {
		t.Fatalf("%s: no answer", target)
	}
	return resp
}

// Hardening, acceptance 3: request targets as sent on the wire, and what
// a raw TCP upstream whose base path is /base receives. Dot segments,
// plain or encoded, are resolved before anything else; none may climb
// out of /base, nor hide behind an encoded slash; encoded slashes stay.
func TestPathNormalisationOnTheWire(t *testing.T) {
	t.Parallel()
	rec := vendortest.Record(t)
	s := newStackURL(t, "", rec.URL+"/base", "")
	addr := strings.TrimPrefix(s.sw.URL, "http://")
	for _, tc := range []struct{ sent, got string }{
		{"/api/v1/x", "/base/v1/x"},
		{"/api/v1/./x", "/base/v1/x"},
		{"/api/v1/../x", "/base/x"},
		{"/api/v1/%2e/x", "/base/v1/x"},
		{"/api/v1/%2E%2e/x", "/base/x"},
		{"/api/a/b/../../c", "/base/c"},
		{"/api/v1//x", "/base/v1/x"},
		{"/api//v1/x", "/base/v1/x"},
		{"/api/v1/x/", "/base/v1/x/"},
		{"/api/v1/x/.", "/base/v1/x/"},
		{"/api/v1/x/..", "/base/v1/"},
		{"/api/", "/base/"},
		{"/api", "/base/"},
		{"/api/a%2fb", "/base/a%2fb"},
		{"/api/a%2Fb/c", "/base/a%2Fb/c"},
		{"/api/v1/x?q=../../y", "/base/v1/x?q=../../y"},
		{"/api/v1/.../x", "/base/v1/.../x"},
		{"/api/.well-known/x", "/base/.well-known/x"},
		{"/api/v1/%41", "/base/v1/%41"},
		{"/api/..", "400"},
		{"/api/../tenant-b/x", "400"},
		{"/api/%2e%2e/tenant-b/x", "400"},
		{"/api/%2E%2E/tenant-b/x", "400"},
		{"/api/.%2e/tenant-b/x", "400"},
		{"/api/%2e./tenant-b/x", "400"},
		{"/api/a/../../tenant-b/x", "400"},
		{"/api/..%2ftenant-b/x", "400"},
		{"/api/..%2Ftenant-b/x", "400"},
		{"/api/..%5ctenant-b/x", "400"},
	} {
		before := len(rec.Targets())
		resp := rawGet(t, addr, tc.sent)
		targets := rec.Targets()
		if tc.got == "400" {
			if resp.StatusCode != 400 || resp.Header.Get("Seawall-Error") != "bad-path" || len(targets) != before {
				t.Errorf("%s: %d %s, upstream got %v; want 400 bad-path and nothing sent", tc.sent, resp.StatusCode, resp.Header.Get("Seawall-Error"), targets[before:])
			}
			continue
		}
		if resp.StatusCode != 200 || len(targets) != before+1 || targets[before] != tc.got {
			t.Errorf("%s: %d, upstream got %v; want %s", tc.sent, resp.StatusCode, targets[before:], tc.got)
		}
	}
}

// Hardening, row 2: routes match the resolved path, so the same request
// always gets the same policy: here a cached route, however the path is
// spelled.
func TestRoutesMatchTheResolvedPath(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", `    cache: {ttl: 1m}
    routes:
      - match: "GET /v1/items/{id}"
        mode: cached
`)
	for _, p := range []string{"/api/v1/items/1", "/api/v1/./items/1", "/api//v1/items/1", "/api/v1/x/../items/1", "/api/v1/%2e/items/1"} {
		r := s.get(p)
		if r.status != 200 || r.header.Get("Cache-Status") == "" {
			t.Errorf("%s: %d, Cache-Status %q; want the cached route's answer", p, r.status, r.header.Get("Cache-Status"))
		}
	}
	if n := s.fake.Count(); n != 1 {
		t.Errorf("the upstream was called %d times, want once: every spelling is one cache key", n)
	}
}

// rawRequest sends req as written and returns the answer, or nil if none
// came. With halfClose it then closes its sending side, still listening:
// a body cut short.
func rawRequest(t *testing.T, addr, req string, halfClose bool) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	_ = resp.Body.Close()
	return resp
}

// Hardening, row 7: a malformed chunked body, on a route small enough to
// buffer or large enough to stream, is answered 400 bad-request by
// Seawall, not a 200 with nothing in it, and is never taken for the
// client going away.
func TestMalformedBodyIs400(t *testing.T) {
	t.Parallel()
	for _, buffer := range []string{"64KiB", "0"} {
		s := newStack(t, "", "    retry: {buffer_body: "+buffer+"}\n")
		addr := strings.TrimPrefix(s.sw.URL, "http://")
		for name, body := range map[string]string{
			"chunk size not hex":     "zz\r\nhello\r\n0\r\n\r\n",
			"chunk size overflows":   "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
			"bare LF":                "5\nhello\n0\n\n",
			"cut short":              "a\r\nhel",
			"chunk longer than said": "2\r\nhello\r\n0\r\n\r\n",
		} {
			resp := rawRequest(t, addr, "POST /api/v1/x HTTP/1.1\r\nHost: seawall\r\nTransfer-Encoding: chunked\r\n\r\n"+body, true)
			if resp == nil || resp.StatusCode != 400 || resp.Header.Get("Seawall-Source") != "seawall" {
				got := "no answer"
				if resp != nil {
					got = fmt.Sprintf("%d from %q (%s)", resp.StatusCode, resp.Header.Get("Seawall-Source"), resp.Header.Get("Seawall-Error"))
				}
				t.Errorf("buffer %s, %s: %s; want 400 from seawall", buffer, name, got)
			}
		}
		if strings.Contains(s.logs.String(), `"status":499`) {
			t.Errorf("buffer %s: a malformed body was logged as the client going away (499)", buffer)
		}
	}
}

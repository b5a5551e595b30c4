package proxy_test

import (
	"strings"
	"testing"
)

// Hardening, row 13: an HTTP/1.0 request with Transfer-Encoding has
// faulty framing (RFC 9112 §6.1): 400, and nothing reaches the vendor,
// whether or not it also has a Content-Length. Before, net/http dropped
// the header and the vendor got an empty body. HTTP/1.0 with a
// Content-Length still works, and its connection is closed after it.
func TestHTTP10WithTransferEncodingIs400(t *testing.T) {
	s := newStack(t, "", "")
	addr := strings.TrimPrefix(s.sw.URL, "http://")
	chunked := "5\r\nhello\r\n0\r\n\r\n"
	for _, tc := range []struct {
		name, req string
	}{
		{"chunked", "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"chunked and a length", "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\n\r\n" + chunked},
		{"a list of codings", "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked},
		{"bare LF", "POST /api/v1/x HTTP/1.0\nHost: s\nTransfer-Encoding: chunked\n\n" + chunked},
	} {
		resp := rawRequest(t, addr, tc.req, false)
		if resp == nil {
			t.Errorf("%s: no answer", tc.name)
			continue
		}
		if resp.StatusCode != 400 || resp.Header.Get("Seawall-Error") != "bad-request" {
			t.Errorf("%s: %d %s, want 400 bad-request", tc.name, resp.StatusCode, resp.Header.Get("Seawall-Error"))
		}
	}
	if n := s.fake.Count(); n != 0 {
		t.Fatalf("the vendor got %d requests with faulty framing", n)
	}

	resp := rawRequest(t, addr, "POST /api/v1/x HTTP/1.0\r\nHost: s\r\nContent-Length: 5\r\n\r\nhello", false)
	if resp == nil {
		t.Fatal("HTTP/1.0 with Content-Length: no answer")
	}
	calls := s.fake.Calls()
	if resp.StatusCode != 200 || len(calls) != 1 || calls[0].Body != "hello" || !resp.Close {
		t.Errorf("HTTP/1.0 with Content-Length: %d, vendor calls %v, closed %v; want 200, the body through, the connection closed", resp.StatusCode, calls, resp.Close)
	}
	// HTTP/1.1 chunked is fine.
	resp = rawRequest(t, addr, "POST /api/v1/y HTTP/1.1\r\nHost: s\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked, false)
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 chunked: %v", resp)
	}
	if calls := s.fake.Calls(); len(calls) != 2 || calls[1].Body != "hello" {
		t.Errorf("HTTP/1.1 chunked: the vendor got %v", calls)
	}
}

// Hostile framing on the app's side (issue 15's checks; the server is
// net/http's and these hold it to its strictness): a request whose length
// is ambiguous is refused, or read one way only, and the vendor never gets
// a request framed two ways, nor a smuggled second request.
func TestHostileRequestFraming(t *testing.T) {
	s := newStack(t, "", "")
	addr := strings.TrimPrefix(s.sw.URL, "http://")
	refused := func(status int) bool { return status == 400 || status == 501 }
	for _, tc := range []struct {
		name, req string
	}{
		{"two different lengths", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		{"a length list", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nContent-Length: 5, 6\r\n\r\nhello!"},
		{"a signed length", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nContent-Length: +5\r\n\r\nhello"},
		{"an unknown coding", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"chunked then identity", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"space before the colon", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"a bad chunk size", "POST /api/v1/x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n"},
	} {
		resp := rawRequest(t, addr, tc.req, false)
		if resp == nil {
			continue // the connection was closed: refused too
		}
		if !refused(resp.StatusCode) {
			t.Errorf("%s: answered %d, want 400 or 501", tc.name, resp.StatusCode)
		}
	}
	if n := s.fake.Count(); n != 0 {
		t.Fatalf("the vendor got %d requests with hostile framing: %v", n, s.fake.Calls())
	}

	// Content-Length and chunked together: chunked wins (RFC 9112 §6.3),
	// and the vendor gets the decoded body, framed one way. What follows
	// the chunked body on the connection is a request of its own, read
	// by Seawall, never a body sent on to the vendor.
	smuggle := "POST /api/v1/first HTTP/1.1\r\nHost: s\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n0\r\n\r\n" +
		"GET /api/v1/second HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
	if resp := rawRequest(t, addr, smuggle, false); resp != nil && resp.StatusCode != 200 && !refused(resp.StatusCode) {
		t.Fatalf("length and chunked together: %d", resp.StatusCode)
	}
	// A folded field line is unfolded (RFC 9112 §5.2 allows it in place
	// of a 400), so the coding is read once, as chunked.
	folded := "POST /api/v1/folded HTTP/1.1\r\nHost: s\r\nConnection: close\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	if resp := rawRequest(t, addr, folded, false); resp == nil || resp.StatusCode != 200 {
		t.Fatalf("a folded Transfer-Encoding: %v", resp)
	}
	for _, c := range s.fake.Calls() {
		if len(c.Header.Values("Content-Length")) > 0 && len(c.Header.Values("Transfer-Encoding")) > 0 {
			t.Errorf("%s reached the vendor framed two ways: %v", c.Path, c.Header)
		}
		if (c.Path == "/v1/first" || c.Path == "/v1/folded") && c.Body != "hello" {
			t.Errorf("the vendor got the body %q, want the decoded hello", c.Body)
		}
		if strings.Contains(c.Body, "GET /api/v1/second") {
			t.Errorf("the next request reached the vendor inside a body: %q", c.Body)
		}
	}
}

// The tests' Seawall is served as seawall serve serves it
// (serveSeawall, server.HTTPServer): a head over its 64 KiB is refused
// 431 and never reaches the vendor, where httptest's default server
// would have taken up to 1 MiB; one under it goes through.
func TestStackKeepsServesHeadLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, "", "")
	addr := strings.TrimPrefix(s.sw.URL, "http://")
	head := func(filler int) string {
		return "GET /api/v1/x HTTP/1.1\r\nHost: s\r\nX-Filler: " + strings.Repeat("a", filler) + "\r\nConnection: close\r\n\r\n"
	}
	if resp := rawRequest(t, addr, head(80<<10), false); resp == nil || resp.StatusCode != 431 {
		t.Fatalf("an 80 KiB head: %v, want 431", resp)
	}
	if n := s.fake.Count(); n != 0 {
		t.Fatalf("the vendor got %d requests", n)
	}
	if resp := rawRequest(t, addr, head(60<<10), false); resp == nil || resp.StatusCode != 200 {
		t.Fatalf("a 60 KiB head: %v, want 200", resp)
	}
}

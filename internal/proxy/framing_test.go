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

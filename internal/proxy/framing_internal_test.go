package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

// FuzzFramingScan: the head scanner never panics, finds an end only at an
// empty line, and never calls a head HTTP/1.0-with-Transfer-Encoding that
// net/http reads as another version.
func FuzzFramingScan(f *testing.F) {
	for _, s := range []string{
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.0\n\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody",
		"POST / HTTP/1.0\r\nX: a\r\n transfer-encoding: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, ok := headEnd(b)
		if !ok {
			return
		}
		if end > len(b) || b[end-1] != '\n' {
			t.Fatalf("headEnd(%q) = %d", b, end)
		}
		if !http10WithTE(b[:end]) {
			return
		}
		if req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:end]))); err == nil && req.ProtoMinor != 0 {
			t.Fatalf("%q: flagged HTTP/1.0, net/http reads HTTP/1.%d", b[:end], req.ProtoMinor)
		}
	})
}

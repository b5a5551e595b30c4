package edge

import (
	"bufio"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		raw    string
		http11 bool
		want   error
	}{
		{"plain", "Host: s\r\nContent-Length: 5\r\n\r\n", true, nil},
		{"bare LF", "Host: s\nX-A: b\n\n", true, nil},
		{"no empty line", "Host: s\r\n", true, nil},
		{"a space before the colon", "Host: s\r\nTransfer-Encoding : chunked\r\n\r\n", true, ErrSpaceBeforeColon},
		{"a tab before the colon", "Host: s\r\nContent-Length\t: 5\r\n\r\n", true, ErrSpaceBeforeColon},
		{"a space before the colon after the head", "Host: s\r\n\r\nX-A : b\r\n", true, nil},
		{"no Host", "X-A: b\r\n\r\n", true, ErrNoHost},
		{"no Host, HTTP/1.0", "X-A: b\r\n\r\n", false, nil},
		{"an empty head", "", true, ErrNoHost},
		{"two Hosts", "Host: a\r\nHost: b\r\n\r\n", true, ErrTwoHosts},
		{"two Hosts, HTTP/1.0", "host: a\r\nHOST: a\r\n\r\n", false, ErrTwoHosts},
		{"a field named like Host", "Hostname: a\r\nX-Host: b\r\nHost: s\r\n\r\n", true, nil},
		{"a fold is the engine's", "Host: s\r\nX-A: a\r\n  : b\r\n\r\n", true, nil},
		{"a line without a colon is the engine's", "Host: s\r\nnonsense\r\n\r\n", true, nil},
		{"an empty name", "Host: s\r\n: v\r\n\r\n", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Fields([]byte(tc.raw), tc.http11); !errors.Is(err, tc.want) {
				t.Errorf("Fields(%q) = %v, want %v", tc.raw, err, tc.want)
			}
		})
	}
}

// Fields refuses only for its three reasons, and a field with whitespace
// before its colon only where net/http's reader (the reference Seawall's
// edge matches) refuses the head too.
func FuzzFields(f *testing.F) {
	f.Add("Host: s\r\nTransfer-Encoding : chunked\r\n\r\n", true)
	f.Add("Host: a\r\nhost: b\r\n\r\n", false)
	f.Add("X-A: b\n\n", true)
	f.Add("Host: s\r\n : x\r\n\tHost: y\r\n", true)
	f.Fuzz(func(t *testing.T, raw string, http11 bool) {
		err := Fields([]byte(raw), http11)
		switch {
		case err == nil, errors.Is(err, ErrNoHost), errors.Is(err, ErrTwoHosts):
		case errors.Is(err, ErrSpaceBeforeColon):
			// net/http's server refuses a head its reader cannot read,
			// or one with a field name that is not a token.
			head := "GET / HTTP/1.1\r\n" + raw + "\r\n\r\n"
			r, rerr := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
			if rerr != nil {
				return
			}
			for name := range r.Header {
				if !httpguts.ValidHeaderFieldName(name) {
					return
				}
			}
			t.Fatalf("Fields refused %q for whitespace before a colon; net/http's server serves it", raw)
		default:
			t.Fatalf("an unknown refusal: %v", err)
		}
	})
}

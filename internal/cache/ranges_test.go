package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A Range request is answered from a stored complete 200 (RFC 9110 §14):
// one byte range as 206, none satisfiable as 416, and anything else, or
// an If-Range that does not hold, as the whole.
func TestPartOf(t *testing.T) {
	lm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stored := &Entry{Status: 200, Body: []byte("0123456789"), Header: hdr("ETag", `"v1"`,
		"Last-Modified", lm.Format(http.TimeFormat), "Date", lm.Add(time.Hour).Format(http.TimeFormat))}
	for _, tt := range []struct {
		rng, ifRange string
		want         string // the part's body, "416", or "whole"
		contentRange string
	}{
		{"bytes=0-1", "", "01", "bytes 0-1/10"},
		{"bytes=1-", "", "123456789", "bytes 1-9/10"},
		{"bytes=-3", "", "789", "bytes 7-9/10"},
		{"bytes=-30", "", "0123456789", "bytes 0-9/10"},
		{"bytes=5-100", "", "56789", "bytes 5-9/10"},
		{"bytes=9-9", "", "9", "bytes 9-9/10"},
		{"BYTES = 2-3", "", "23", "bytes 2-3/10"},
		{"bytes=, 2-3,", "", "23", "bytes 2-3/10"},
		{"bytes=0-99999999999999999999999", "", "0123456789", "bytes 0-9/10"},
		{"bytes=10-", "", "416", "bytes */10"},
		{"bytes=-0", "", "416", "bytes */10"},
		{"bytes=99999999999999999999999-", "", "416", "bytes */10"},
		{"bytes=3-2", "", "whole", ""},
		{"bytes=0-1,4-5", "", "whole", ""},
		{"items=0-1", "", "whole", ""},
		{"bytes=a-1", "", "whole", ""},
		{"bytes=-", "", "whole", ""},
		{"bytes=+1-2", "", "whole", ""},
		{"bytes=0-1", `"v1"`, "01", "bytes 0-1/10"},
		{"bytes=0-1", `"v2"`, "whole", ""},
		{"bytes=0-1", `W/"v1"`, "whole", ""},
		{"bytes=0-1", lm.Format(http.TimeFormat), "01", "bytes 0-1/10"},
		{"bytes=0-1", lm.Add(time.Second).Format(http.TimeFormat), "whole", ""},
		{"bytes=0-1", "not a date", "whole", ""},
	} {
		req := hdr("Range", tt.rng)
		if tt.ifRange != "" {
			req.Set("If-Range", tt.ifRange)
		}
		p := PartOf(req, stored)
		got := "whole"
		switch {
		case p.Whole:
		case !p.Satisfiable:
			got = "416"
		default:
			got = string(stored.Body[p.First : p.Last+1])
		}
		if got != tt.want || (!p.Whole && p.ContentRange(10) != tt.contentRange) {
			t.Errorf("Range %q If-Range %q: %s (%+v, %q), want %s %q", tt.rng, tt.ifRange, got, p, p.ContentRange(10), tt.want, tt.contentRange)
		}
	}
	// A weak ETag, a Last-Modified too close to Date, a stored 404 or an
	// empty body: the whole.
	weak := &Entry{Status: 200, Body: []byte("0123"), Header: hdr("ETag", `W/"v1"`, "Last-Modified", lm.Format(http.TimeFormat), "Date", lm.Format(http.TimeFormat))}
	for _, c := range []struct {
		e       *Entry
		ifRange string
	}{{weak, `W/"v1"`}, {weak, `"v1"`}, {weak, lm.Format(http.TimeFormat)}, {&Entry{Status: 404, Body: []byte("gone")}, ""}, {&Entry{Status: 200}, ""}} {
		req := hdr("Range", "bytes=0-1")
		if c.ifRange != "" {
			req.Set("If-Range", c.ifRange)
		}
		if p := PartOf(req, c.e); !p.Whole {
			t.Errorf("stored %d %v, If-Range %q: %+v, want the whole", c.e.Status, c.e.Header, c.ifRange, p)
		}
	}
}

// FuzzPartOf: whatever an app writes in Range and If-Range, the part is
// the whole, a 416, or bounds inside the body.
func FuzzPartOf(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=3-", "bytes=0-1,2-3", "bytes=9-1", "bytes=99999999999999999999-", "Bytes = ,1-2,", "x"} {
		f.Add(s, "", 10)
	}
	f.Add("bytes=0-0", `"v"`, 0)
	f.Fuzz(func(t *testing.T, rng, ifRange string, size int) {
		if size < 0 || size > 1<<16 {
			return
		}
		e := &Entry{Status: 200, Body: []byte(strings.Repeat("x", size)), Header: hdr("ETag", `"v"`)}
		req := hdr("Range", rng)
		if ifRange != "" {
			req.Set("If-Range", ifRange)
		}
		p := PartOf(req, e)
		if p.Whole || !p.Satisfiable {
			return
		}
		if p.First < 0 || p.First > p.Last || p.Last >= int64(size) {
			t.Fatalf("Range %q over %d bytes: %+v", rng, size, p)
		}
	})
}

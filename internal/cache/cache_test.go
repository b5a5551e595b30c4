package cache

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseCacheControl(t *testing.T) {
	d := ParseCacheControl(hdr("Cache-Control", `public, max-age=60, s-maxage="30", no-cache="Set-Cookie, X", stale-if-error=600`, "Cache-Control", "max-age=5, stale-while-revalidate=bad, MUST-REVALIDATE"))
	if d.MaxAge != time.Minute || d.SMaxAge != 30*time.Second || !d.Public || !d.NoCache || !d.MustRevalidate {
		t.Errorf("got %+v", d)
	}
	if d.StaleIfError != 10*time.Minute || d.StaleWhileRevalidate != -1 {
		t.Errorf("stale-if-error %v, stale-while-revalidate %v; want 10m and -1 (malformed)", d.StaleIfError, d.StaleWhileRevalidate)
	}
	if d := ParseCacheControl(hdr("Cache-Control", "max-stale, max-age=99999999999999")); !d.MaxStaleAny || d.MaxAge != maxDelta*time.Second {
		t.Errorf("got %+v, want max-stale any and max-age capped", d)
	}
}

func TestStorable(t *testing.T) {
	tests := []struct {
		name   string
		req    http.Header
		status int
		resp   http.Header
		o      Overrides
		want   bool
		reason string
	}{
		{"max-age", nil, 200, hdr("Cache-Control", "max-age=60"), Overrides{}, true, ""},
		{"no-store response", nil, 200, hdr("Cache-Control", "no-store, max-age=60"), Overrides{}, false, "no-store"},
		{"no-store request", hdr("Cache-Control", "no-store"), 200, hdr("Cache-Control", "max-age=60"), Overrides{}, false, "no-store"},
		{"private", nil, 200, hdr("Cache-Control", "private, max-age=60"), Overrides{}, false, "private"},
		{"vary star", nil, 200, hdr("Cache-Control", "max-age=60", "Vary", "*"), Overrides{}, false, "vary-star"},
		{"500 without freshness", nil, 500, hdr(), Overrides{TTL: time.Minute}, false, "status"},
		{"500 with max-age", nil, 500, hdr("Cache-Control", "max-age=5"), Overrides{}, true, ""},
		{"nothing to go on", nil, 200, hdr(), Overrides{}, false, "no-freshness"},
		{"route ttl", nil, 200, hdr(), Overrides{TTL: time.Minute}, true, ""},
		{"validator only", nil, 200, hdr("ETag", `"v1"`), Overrides{}, true, ""},
		{"authorization, plain", hdr("Authorization", "Bearer a"), 200, hdr("Cache-Control", "max-age=60"), Overrides{}, false, "authorization"},
		{"authorization, public", hdr("Authorization", "Bearer a"), 200, hdr("Cache-Control", "public, max-age=60"), Overrides{}, true, ""},
		{"authorization, s-maxage", hdr("Authorization", "Bearer a"), 200, hdr("Cache-Control", "s-maxage=60"), Overrides{}, true, ""},
		{"206", nil, 206, hdr("Cache-Control", "max-age=60", "Content-Range", "bytes 0-5/100"), Overrides{}, false, "partial"},
		{"range request", hdr("Range", "bytes=0-5"), 200, hdr("Cache-Control", "max-age=60"), Overrides{}, false, "partial"},
		{"set-cookie", nil, 200, hdr("Cache-Control", "max-age=60", "Set-Cookie", "s=1"), Overrides{}, false, "set-cookie"},
		{"must-understand, understood", nil, 200, hdr("Cache-Control", "must-understand, no-store, max-age=60"), Overrides{}, true, ""},
		{"must-understand, not understood", nil, 418, hdr("Cache-Control", "must-understand, max-age=60"), Overrides{}, false, "must-understand"},
		{"set-cookie, allowed", nil, 200, hdr("Cache-Control", "max-age=60", "Set-Cookie", "s=1"), Overrides{StoreSetCookie: true}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req == nil {
				tt.req = hdr()
			}
			got, reason := Storable(tt.req, tt.status, tt.resp, tt.o)
			if got != tt.want || reason != tt.reason {
				t.Errorf("Storable = %v %q, want %v %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestLifetimeAndAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	date := t0.Format(http.TimeFormat)
	e := Entry{Status: 200, RequestTime: t0, ResponseTime: t0.Add(2 * time.Second),
		Header: hdr("Date", date, "Expires", t0.Add(time.Hour).Format(http.TimeFormat), "Age", "10")}
	if got := e.Lifetime(Overrides{}); got != time.Hour {
		t.Errorf("Expires lifetime = %v, want 1h", got)
	}
	// corrected initial age = Age 10s + 2s response delay; then 30s resident.
	if got := e.Age(t0.Add(32 * time.Second)); got != 42*time.Second {
		t.Errorf("Age = %v, want 42s", got)
	}
	if got := NewEntry(200, e.Header, nil, e.RequestTime, e.ResponseTime, nil).Age(t0.Add(32 * time.Second)); got != 42*time.Second {
		t.Errorf("Age of NewEntry = %v, want 42s as above", got)
	}
	// A Date a minute old makes the apparent age win: 62s, then 30s resident.
	old := NewEntry(200, hdr("Date", t0.Add(-time.Minute).Format(http.TimeFormat)), nil, t0, t0.Add(2*time.Second), nil)
	if got := old.Age(t0.Add(32 * time.Second)); got != 92*time.Second {
		t.Errorf("Age with an old Date = %v, want 92s", got)
	}
	e.Header.Set("Cache-Control", "max-age=60, s-maxage=5")
	if got := e.Lifetime(Overrides{TTL: time.Hour}); got != 5*time.Second {
		t.Errorf("s-maxage lifetime = %v, want 5s", got)
	}
	e.Header = hdr("Date", date, "Last-Modified", t0.Add(-100*time.Hour).Format(http.TimeFormat))
	if got := e.Lifetime(Overrides{}); got != 10*time.Hour {
		t.Errorf("heuristic lifetime = %v, want 10%% of 100h", got)
	}
	e.Header = hdr("Date", date, "Expires", "0")
	if got := e.Lifetime(Overrides{TTL: time.Hour}); got != 0 {
		t.Errorf("invalid Expires lifetime = %v, want 0", got)
	}
}

func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	entry := func(cc string) *Entry {
		return &Entry{Status: 200, RequestTime: t0, ResponseTime: t0, Header: hdr("Date", t0.Format(http.TimeFormat), "Cache-Control", cc)}
	}
	tests := []struct {
		name     string
		cc, req  string
		at       time.Duration
		o        Overrides
		fresh    bool
		swr, sie bool
	}{
		{"fresh", "max-age=60", "", 30 * time.Second, Overrides{}, true, false, false},
		{"expired", "max-age=60", "", 90 * time.Second, Overrides{}, false, false, false},
		{"swr window", "max-age=60, stale-while-revalidate=60", "", 90 * time.Second, Overrides{}, false, true, false},
		{"past swr", "max-age=60, stale-while-revalidate=10", "", 90 * time.Second, Overrides{}, false, false, false},
		{"sie window", "max-age=60, stale-if-error=600", "", 5 * time.Minute, Overrides{}, false, false, true},
		{"route sie", "max-age=60", "", 5 * time.Minute, Overrides{StaleIfError: 10 * time.Minute}, false, false, true},
		{"must-revalidate forbids stale", "max-age=60, must-revalidate, stale-if-error=600", "", 90 * time.Second, Overrides{}, false, false, false},
		{"proxy-revalidate forbids stale", "max-age=60, proxy-revalidate, stale-while-revalidate=600", "", 90 * time.Second, Overrides{}, false, false, false},
		{"response no-cache", "max-age=60, no-cache", "", time.Second, Overrides{}, false, false, false},
		{"request no-cache", "max-age=60", "no-cache", time.Second, Overrides{}, false, false, false},
		{"request max-age", "max-age=60", "max-age=10", 30 * time.Second, Overrides{}, false, false, false},
		{"request min-fresh", "max-age=60", "min-fresh=40", 30 * time.Second, Overrides{}, false, false, false},
		{"request max-stale", "max-age=60", "max-stale=60", 90 * time.Second, Overrides{}, true, false, false},
		{"request max-stale any", "max-age=60", "max-stale", time.Hour, Overrides{}, true, false, false},
		{"max-stale vs must-revalidate", "max-age=60, must-revalidate", "max-stale", 90 * time.Second, Overrides{}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := entry(tt.cc).Judge(ParseCacheControl(hdr("Cache-Control", tt.req)), t0.Add(tt.at), tt.o)
			if v.Fresh != tt.fresh || v.ServeWhileRevalidating != tt.swr || v.ServeOnError != tt.sie {
				t.Errorf("Judge = %+v, want fresh %v swr %v sie %v", v, tt.fresh, tt.swr, tt.sie)
			}
		})
	}
}

func TestVaryNames(t *testing.T) {
	names, star := VaryNames(hdr("Vary", "accept-encoding, Accept", "Vary", "X-Tenant, accept"))
	if star || fmt.Sprint(names) != "[Accept Accept-Encoding X-Tenant]" {
		t.Errorf("VaryNames = %v %v", names, star)
	}
}

func TestMemoryStaysWithinBytes(t *testing.T) {
	evictions := 0
	m := NewMemory(10_000, 2_000, func() { evictions++ })
	body := make([]byte, 1000)
	for i := 0; i < 40; i++ {
		if !m.Set(fmt.Sprintf("k%d", i), &Entry{Body: body, Header: hdr()}, time.Minute) {
			t.Fatalf("Set %d refused", i)
		}
		if b := m.Bytes(); b > 10_000 {
			t.Fatalf("after %d sets, %d bytes stored, over the 10000 limit", i+1, b)
		}
	}
	if _, ok := m.Get("k0"); ok {
		t.Error("oldest entry still present after filling 4x the limit")
	}
	if _, ok := m.Get("k39"); !ok {
		t.Error("newest entry missing")
	}
	if evictions == 0 {
		t.Error("no evictions reported")
	}
	if m.Set("big", &Entry{Body: make([]byte, 3000)}, time.Minute) {
		t.Error("entry over max entry size stored")
	}
	// Entries weigh 1256 bytes, so 7 fit: k33..k39 remain.
	if n := m.Purge("k3"); n != 7 || m.Bytes() != 0 {
		t.Errorf("Purge(k3) removed %d leaving %d bytes, want 7 and 0", n, m.Bytes())
	}
}

func FuzzHeaders(f *testing.F) {
	f.Add(`public, max-age=60, no-cache="a,b"`, "10", "Accept, *")
	f.Add(`max-stale, s-maxage=99999999999999999999`, "-1", ",,")
	f.Add(`"unterminated, max-age=5`, "1e9", "accept-encoding")
	f.Fuzz(func(t *testing.T, cc, age, vary string) {
		h := hdr("Cache-Control", cc, "Age", age, "Vary", vary)
		d := ParseCacheControl(h)
		for _, v := range []time.Duration{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleIfError, d.StaleWhileRevalidate} {
			if v < -1 || v > maxDelta*time.Second {
				t.Fatalf("directive out of range: %+v", d)
			}
		}
		if a := ParseAge(h); a < 0 {
			t.Fatalf("Age %v", a)
		}
		names, star := VaryNames(h)
		if star && names != nil {
			t.Fatal("star with names")
		}
		now := time.Now()
		e := &Entry{Status: 200, Header: h, RequestTime: now, ResponseTime: now}
		_ = e.Judge(d, now.Add(time.Minute), Overrides{})
		_, _ = Storable(h, 200, h, Overrides{})
	})
}

// dateNames are the names an HTTP-date holds, in any case; canonicalName
// spells each as the grammar does.
var (
	dateNames     = regexp.MustCompile(`(?i)[a-z]+`)
	canonicalName = map[string]string{}
)

func init() {
	for _, n := range []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
		"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "GMT"} {
		canonicalName[strings.ToLower(n)] = n
	}
}

// FuzzHTTPDate: the strict date parser never panics, and what it accepts,
// its names and GMT in any case (as date.go reads them), Go's lenient
// parser reads as the same date once they are spelled as the grammar
// spells them.
func FuzzHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 8:49:37 GMT", "SundAY, 01-Nov-00 00:00:00 gMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseHTTPDate(s)
		if !ok {
			return
		}
		canon := dateNames.ReplaceAllStringFunc(s, func(w string) string { return canonicalName[strings.ToLower(w)] })
		lenient, err := http.ParseTime(canon)
		if err != nil || !lenient.Equal(got) {
			t.Fatalf("ParseHTTPDate(%q) = %v; http.ParseTime(%q) says %v, %v", s, got, canon, lenient, err)
		}
	})
}

// Cache correctness, items 5 and 6: HTTP dates are read as RFC 9110
// §5.6.7 writes them, anything else is invalid (an Expires so written is
// already expired); Age counts by the first member of a list, and an
// invalid Age is ignored.
// Cache correctness, item 10: heuristic freshness for a status that
// allows it, and for any status when the response is public.
func TestHeuristicFreshness(t *testing.T) {
	date, lm := "Sun, 06 Nov 1994 08:49:37 GMT", "Thu, 27 Oct 1994 08:49:37 GMT" // ten days before
	for _, tc := range []struct {
		status int
		cc     string
		want   time.Duration
	}{
		{200, "", 24 * time.Hour},
		{302, "", 0},
		{302, "public", 24 * time.Hour},
		{500, "public", 24 * time.Hour},
	} {
		e := Entry{Status: tc.status, Header: hdr("Date", date, "Last-Modified", lm)}
		if tc.cc != "" {
			e.Header.Set("Cache-Control", tc.cc)
		}
		if got := e.Lifetime(Overrides{}); got != tc.want {
			t.Errorf("%d %q: heuristic lifetime %s, want %s", tc.status, tc.cc, got, tc.want)
		}
	}
}

func TestHTTPDatesAndAge(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{"Sun, 06 Nov 1994 8:49:37 GMT", false},   // one-digit hour
		{"Sun,  06 Nov 1994 08:49:37 GMT", false}, // extra space
		{"Sun, 06 Nov 1994\r\n 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 06 Nov 1994 08:49:37 +0000", false},
		{"0", false},
		{"", false},
		{"Sun, 31 Feb 1994 08:49:37 GMT", false},
		// Names in any case: a robust reading that cannot shift the date.
		{"sun, 06 nov 1994 08:49:37 GMT", true},
		{"SUNDAY, 06-NOV-94 08:49:37 GMT", true},
		{"sun nov  6 08:49:37 1994", true},
		{"sun, 06 nov 1994 08:49:37 gmt", true},
		{"Sunday, 06-Nov-94 08:49:37 gMT", true},
		{"Sun, 06 Nov 1994 08:49:37 GMX", false},
	} {
		got, ok := ParseHTTPDate(tc.in)
		if ok != tc.ok || (ok && !got.Equal(want)) {
			t.Errorf("ParseHTTPDate(%q) = %v %v, want ok=%v", tc.in, got, ok, tc.ok)
		}
	}
	date := "Sun, 06 Nov 1994 08:49:37 GMT"
	e := Entry{Status: 200, Header: hdr("Date", date, "Expires", "Sun, 06 Nov 2050 8:49:37 GMT")}
	if l := e.Lifetime(Overrides{}); l > 0 {
		t.Errorf("an Expires with a one-digit hour gave a lifetime of %s; invalid means already expired", l)
	}
	e = Entry{Status: 200, Header: hdr("Date", date, "Expires", "Sun, 06 Nov 1994 09:49:37 GMT")}
	if l := e.Lifetime(Overrides{}); l != time.Hour {
		t.Errorf("a valid Expires an hour after Date: lifetime %s", l)
	}

	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{hdr("Age", "7200, 0"), 2 * time.Hour},
		{hdr("Age", "7200", "Age", "0"), 2 * time.Hour},
		{hdr("Age", " 60 "), time.Minute},
		{hdr("Age", "-5"), 0},
		{hdr("Age", "1.5"), 0},
		{hdr("Age", "abc, 60"), 0},
		{hdr(), 0},
	} {
		if got := ParseAge(tc.h); got != tc.want {
			t.Errorf("ParseAge(%v) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

// Cache correctness, items 8 and 9, the rules: the app's own conditions
// against a stored 200, If-None-Match before If-Modified-Since; and the
// Vary key's view of a request field.
func TestConditionsAndVaryValues(t *testing.T) {
	lm := "Sun, 06 Nov 1994 08:49:37 GMT"
	e := &Entry{Status: 200, Header: hdr("ETag", `"v1"`, "Last-Modified", lm, "Cache-Control", "max-age=60", "Content-Type", "text/plain")}
	for _, tc := range []struct {
		name string
		req  http.Header
		want bool
	}{
		{"etag matches", hdr("If-None-Match", `"v1"`), true},
		{"weak etag matches", hdr("If-None-Match", `W/"v1"`), true},
		{"one of a list", hdr("If-None-Match", `"v0", "v1"`), true},
		{"star", hdr("If-None-Match", "*"), true},
		{"etag differs", hdr("If-None-Match", `"v2"`), false},
		{"unquoted", hdr("If-None-Match", `v1`), false},
		{"since after modified", hdr("If-Modified-Since", "Mon, 07 Nov 1994 08:49:37 GMT"), true},
		{"since equal", hdr("If-Modified-Since", lm), true},
		{"since before", hdr("If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT"), false},
		{"since invalid", hdr("If-Modified-Since", "yesterday"), false},
		{"etag decides over the date", hdr("If-None-Match", `"v2"`, "If-Modified-Since", lm), false},
		{"none", hdr(), false},
	} {
		if got := NotModified(tc.req, e); got != tc.want {
			t.Errorf("%s: NotModified = %v, want %v", tc.name, got, tc.want)
		}
	}
	if h := NotModifiedHeader(e); h.Get("ETag") != `"v1"` || h.Get("Content-Type") != "" {
		t.Errorf("a 304's header: %v", h)
	}
	// No Last-Modified: Date stands in, else the time received (RFC 9111 §4.3.2).
	t0 := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	dated := &Entry{Status: 200, Header: hdr("Date", lm)}
	received := &Entry{Status: 200, Header: hdr(), ResponseTime: t0}
	for _, c := range []struct {
		e     *Entry
		since time.Time
		want  bool
	}{{dated, t0, true}, {dated, t0.Add(-time.Second), false}, {received, t0, true}, {received, t0.Add(-time.Second), false}, {&Entry{Status: 200, Header: hdr()}, t0, false}} {
		if got := NotModified(hdr("If-Modified-Since", c.since.Format(http.TimeFormat)), c.e); got != c.want {
			t.Errorf("stored %v received %v, If-Modified-Since %v: NotModified = %v, want %v", c.e.Header, c.e.ResponseTime, c.since, got, c.want)
		}
	}
	if NotModified(hdr("If-None-Match", "*"), &Entry{Status: 404, Header: hdr("ETag", `"x"`)}) {
		t.Error("a stored 404 answered 304")
	}

	same := [][]string{
		{"gzip, br", "gzip,br", " gzip ,  br ", "GZIP, BR"},
		{"text/html; q=0.9", "text/html;q=0.9", "text/html ;q=0.9"},
	}
	names := []string{"Accept-Encoding", "Accept"}
	for i, vals := range same {
		want := VaryValue(hdr(names[i], vals[0]), names[i])
		for _, v := range vals[1:] {
			if got := VaryValue(hdr(names[i], v), names[i]); got != want {
				t.Errorf("%s %q keys as %q, %q as %q: equivalent requests apart", names[i], v, got, vals[0], want)
			}
		}
	}
	if VaryValue(hdr("Accept-Encoding", "gzip"), "Accept-Encoding") == VaryValue(hdr("Accept-Encoding", "br"), "Accept-Encoding") {
		t.Error("different values share a key")
	}
	if VaryValue(hdr("X-Tenant", "Acme"), "X-Tenant") == VaryValue(hdr("X-Tenant", "acme"), "X-Tenant") {
		t.Error("a field whose case may matter was lower-cased")
	}
	if VaryValue(hdr("Accept-Encoding", "gzip", "Accept-Encoding", "br"), "Accept-Encoding") != VaryValue(hdr("Accept-Encoding", "gzip, br"), "Accept-Encoding") {
		t.Error("a field repeated and the same list keyed apart")
	}
}

// FuzzConditions: the conditional-request and Vary-value rules never
// panic; If-None-Match "*" meets any stored 200 with an ETag; a Vary
// value is already in its normal form.
func FuzzConditions(f *testing.F) {
	f.Add(`"v1", W/"v2"`, "Sun, 06 Nov 1994 08:49:37 GMT", `"v1"`, "Sun, 06 Nov 1994 08:49:37 GMT", "gzip ,BR")
	f.Add("*", "", "", "", "")
	f.Fuzz(func(t *testing.T, inm, ims, etag, lm, vary string) {
		req := hdr("If-None-Match", inm, "If-Modified-Since", ims)
		e := &Entry{Status: 200, Header: hdr("ETag", etag, "Last-Modified", lm)}
		_ = NotModified(req, e)
		if strings.TrimSpace(etag) != "" && NotModified(hdr("If-None-Match", "*"), e) != true {
			t.Fatalf("If-None-Match * did not meet ETag %q", etag)
		}
		v := VaryValue(hdr("Accept-Encoding", vary), "Accept-Encoding")
		if again := VaryValue(hdr("Accept-Encoding", v), "Accept-Encoding"); again != v {
			t.Fatalf("VaryValue(%q) = %q, then %q: not a normal form", vary, v, again)
		}
	})
}

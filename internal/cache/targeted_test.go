package cache

import (
	"testing"
	"time"
)

// The house, item 8 (RFC 9213): CDN-Cache-Control, when it holds a valid,
// non-empty dictionary, governs Seawall's cache in place of Cache-Control
// and Expires; empty or unparsable, it is ignored.
func TestCDNCacheControlIsTheCachesOwn(t *testing.T) {
	date := "Sun, 06 Nov 1994 08:49:37 GMT"
	for _, tc := range []struct {
		name     string
		header   []string
		storable bool
		life     time.Duration
	}{
		{"targeted max-age over no-store", []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, true, time.Minute},
		{"targeted no-store over max-age", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"}, false, 0},
		{"targeted private", []string{"Cache-Control", "public, max-age=60", "CDN-Cache-Control", "private"}, false, 0},
		{"targeted max-age shorter than Cache-Control's", []string{"Cache-Control", "max-age=3600", "CDN-Cache-Control", "max-age=30"}, true, 30 * time.Second},
		{"Expires is ignored beside a targeted field", []string{"Expires", "Sun, 06 Nov 1994 09:49:37 GMT", "CDN-Cache-Control", "max-age=30"}, true, 30 * time.Second},
		{"a targeted field without freshness leaves none", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "must-revalidate"}, false, 0},
		{"a decimal max-age is not consumed", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=1.5"}, false, 0},
		{"two field lines make one dictionary", []string{"CDN-Cache-Control", "no-cache", "CDN-Cache-Control", "max-age=20"}, true, 20 * time.Second},
		{"an unparsable field is ignored", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=60,,("}, true, time.Minute},
		{"an empty field is ignored", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", ""}, true, time.Minute},
		{"no targeted field", []string{"Cache-Control", "max-age=60"}, true, time.Minute},
	} {
		h := hdr(append([]string{"Date", date}, tc.header...)...)
		ok, why := Storable(hdr(), 200, h, Overrides{})
		if ok != tc.storable {
			t.Errorf("%s: storable %v (%s), want %v", tc.name, ok, why, tc.storable)
		}
		e := Entry{Status: 200, Header: h}
		if life := e.Lifetime(Overrides{}); life != tc.life {
			t.Errorf("%s: lifetime %s, want %s", tc.name, life, tc.life)
		}
	}
}

// FuzzTargeted: whatever a vendor writes in CDN-Cache-Control, reading it
// neither panics nor yields a negative duration other than "absent".
func FuzzTargeted(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store, private", "max-age=1.5", "max-age=-1", "max-age=60,,(", `s-maxage=10;a=1, x=("a" b)`, ""} {
		f.Add(s, "max-age=5")
	}
	f.Fuzz(func(t *testing.T, targeted, cc string) {
		d, _ := ResponseDirectives(hdr("CDN-Cache-Control", targeted, "Cache-Control", cc), nil)
		for _, v := range []time.Duration{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleWhileRevalidate, d.StaleIfError} {
			if v < -1 {
				t.Fatalf("CDN-Cache-Control %q, Cache-Control %q: a duration of %s", targeted, cc, v)
			}
		}
	})
}

package cache

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// An entry read back from the shared level is the entry stored: status,
// header, body, times and targeted fields (nil, the default fields, and
// empty, none, stay apart), so that it is judged as in memory.
func TestEncodedEntryRoundTrips(t *testing.T) {
	sent := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, targets := range [][]string{nil, {}, {"CDN-Cache-Control"}} {
		e := NewEntry(200, http.Header{"Cache-Control": {"max-age=60"}, "Etag": {`"x"`}}, []byte("body\x00bytes"), sent, sent.Add(time.Second), targets)
		got, err := DecodeEntry(EncodeEntry(e))
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != 200 || !bytes.Equal(got.Body, e.Body) || !reflect.DeepEqual(got.Header, e.Header) ||
			!got.RequestTime.Equal(sent) || (got.targets == nil) != (targets == nil) || got.Lifetime(Overrides{}) != time.Minute {
			t.Errorf("targets %v: read back %+v", targets, got)
		}
	}
	marker := &Entry{Header: http.Header{"Vary": {"Accept"}}}
	if got, err := DecodeEntry(EncodeEntry(marker)); err != nil || got.Status != 0 || got.Header.Get("Vary") != "Accept" {
		t.Errorf("a Vary marker read back as %+v, %v", got, err)
	}
}

// What the shared level holds is outside input (another program may
// write under Seawall's keys): anything but an entry Seawall encoded is
// an error, never a panic, and an entry read is one a hit can judge.
func FuzzDecodeEntry(f *testing.F) {
	sent := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	f.Add(EncodeEntry(NewEntry(200, http.Header{"Cache-Control": {"max-age=60"}}, []byte("x"), sent, sent, nil)))
	f.Add(EncodeEntry(&Entry{Header: http.Header{"Vary": {"Accept"}}}))
	f.Add([]byte(`{"v":1,"status":200,"header":{"A b":["c"]},"body":"","request_time":"2026-01-01T00:00:00Z","response_time":"2026-01-01T00:00:00Z","targets":null}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		if e.Header == nil || e.Status < 0 || e.Status > 999 {
			t.Fatalf("read %q as %+v", b, e)
		}
		e.Judge(Directives{MaxAge: -1, MaxStale: -1, MinFresh: -1}, sent, Overrides{})
		e.KeepFor(sent, Overrides{})
		if again, err := DecodeEntry(EncodeEntry(e)); err != nil || again.Status != e.Status || !bytes.Equal(again.Body, e.Body) {
			t.Fatalf("%q read, written and read again: %+v, %v", b, again, err)
		}
	})
}

package admin

import (
	"testing"
	"time"
)

// since= is outside input: any string gives a time no later than now, or
// an error.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"", "15m", "2026-11-25T12:00:00Z", "-1h", "9999999999h", "x"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err == nil && s != "" && got.IsZero() {
			t.Fatalf("parseSince(%q) = zero time without error", s)
		}
		if d, derr := time.ParseDuration(s); derr == nil && err == nil && d >= 0 && got.After(now) {
			t.Fatalf("parseSince(%q) = %v, after now", s, got)
		}
	})
}

package config

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(validDoc))
	f.Add([]byte("upstreams:\n  a:\n    url: http://x\n    routes:\n      - match: \"GET /{id}\"\n"))
	f.Add([]byte("upstreams: {a: {url: 'http://x', retry: {max_attempts: 0}, breaker: {failure_statuses: [5xx]}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, env(map[string]string{"PAY_KEY": "k"}))
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned cfg=%v err=%v: want exactly one", cfg != nil, err)
		}
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatal("empty error message")
		}
	})
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "5/10s", "1/h", "x/s", "1e309/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err == nil && !(r.PerSecond() > 0) {
			t.Fatalf("ParseRate(%q) = %v/s without error", s, r.PerSecond())
		}
		if err == nil {
			back, err := ParseRate(r.String())
			if err != nil || back.PerSecond() != r.PerSecond() {
				t.Fatalf("round trip of %q via %q = %v, %v", s, r.String(), back, err)
			}
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1MiB", "512", "9223372036854775807", "8589934592GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"250ms", "1h2m", "-1s", "9999999999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDuration(s); err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}

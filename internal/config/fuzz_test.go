package config

import (
	"fmt"
	"net/url"
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

// FuzzEndpoints builds an upstream's endpoints from fuzzed fields: an
// accepted config always has an endpoint, every one a parseable http(s)
// URL with a host and a weight in range, and zones on all or none.
func FuzzEndpoints(f *testing.F) {
	f.Add("http://a", "a", "1", "http://b", "b", "2", "50%")
	f.Add("https://a:8443/v1", "", "", "http://a", "", "", "34")
	f.Add("http://[::1]:80", "z.1", "1000", "http://x?q", "z", "0", "1e3%")
	f.Fuzz(func(t *testing.T, u1, z1, w1, u2, z2, w2, maxIso string) {
		doc := fmt.Sprintf("zone: %q\nupstreams:\n  a:\n    endpoints:\n      - {url: %q, zone: %q, weight: %q}\n      - {url: %q, zone: %q, weight: %q}\n    health: {max_isolated: %q}\n",
			z1, u1, z1, w1, u2, z2, w2, maxIso)
		cfg, err := Parse("f.yaml", []byte(doc), env(nil))
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		eps := cfg.Upstreams["a"].Endpoints
		if len(eps) == 0 {
			t.Fatal("accepted an upstream without endpoints")
		}
		zoned := 0
		for _, e := range eps {
			pu, err := url.Parse(e.URL)
			if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" {
				t.Fatalf("accepted endpoint URL %q", e.URL)
			}
			if e.Weight < 1 || e.Weight > 1000 {
				t.Fatalf("accepted weight %d", e.Weight)
			}
			if e.Zone != "" {
				zoned++
			}
		}
		if zoned != 0 && zoned != len(eps) {
			t.Fatalf("accepted zones on some endpoints only: %+v", eps)
		}
		if m := cfg.Upstreams["a"].Health.MaxIsolated; m < 0 || m > 100 {
			t.Fatalf("accepted max_isolated %v", m)
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

func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"0.002", "1", ".5", "-1", "999999999.999999999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMoney(s)
		if err != nil {
			return
		}
		if m < 0 {
			t.Fatalf("ParseMoney(%q) = %d", s, m)
		}
		if back, err := ParseMoney(m.String()); err != nil || back != m {
			t.Fatalf("round trip of %q via %q = %v, %v", s, m.String(), back, err)
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

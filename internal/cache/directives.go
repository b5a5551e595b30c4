package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Directives are the Cache-Control directives Seawall acts on (RFC 9111 §5.2,
// RFC 5861). A duration directive that is absent or malformed is -1.
type Directives struct {
	MaxAge, SMaxAge, MaxStale, MinFresh           time.Duration
	StaleWhileRevalidate, StaleIfError            time.Duration
	NoStore, NoCache, Private, Public             bool
	MustRevalidate, ProxyRevalidate, OnlyIfCached bool
	// MustUnderstand: store only if the status's caching rules are
	// understood, and then no-store does not apply (RFC 9111 §5.2.2.3).
	MustUnderstand bool
	// MaxStaleAny is max-stale without a value: any staleness is acceptable.
	MaxStaleAny bool
}

// maxDelta caps delta-seconds (RFC 9111 §1.2.2 allows 2^31 as "infinity").
const maxDelta = 1 << 31

// ParseCacheControl reads every Cache-Control field line of h.
func ParseCacheControl(h http.Header) Directives {
	d := Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
	for _, line := range h["Cache-Control"] { // canonical already: no canonicalizing per call
		for _, part := range splitDirectives(line) {
			name, value, hasValue := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			value = strings.Trim(strings.TrimSpace(value), `"`)
			d.set(name, value, hasValue)
		}
	}
	return d
}

func (d *Directives) set(name, value string, hasValue bool) {
	secs := func() time.Duration { return parseDelta(value) }
	switch name {
	case "max-age":
		d.MaxAge = firstDelta(d.MaxAge, secs())
	case "s-maxage":
		d.SMaxAge = firstDelta(d.SMaxAge, secs())
	case "max-stale":
		if hasValue {
			d.MaxStale = firstDelta(d.MaxStale, secs())
		} else {
			d.MaxStaleAny = true
		}
	case "min-fresh":
		d.MinFresh = firstDelta(d.MinFresh, secs())
	case "stale-while-revalidate":
		d.StaleWhileRevalidate = firstDelta(d.StaleWhileRevalidate, secs())
	case "stale-if-error":
		d.StaleIfError = firstDelta(d.StaleIfError, secs())
	case "no-store":
		d.NoStore = true
	case "no-cache":
		// The qualified form (no-cache="Set-Cookie") is treated as unqualified:
		// stricter, and always allowed (RFC 9111 §5.2.2.4).
		d.NoCache = true
	case "private":
		d.Private = true
	case "public":
		d.Public = true
	case "must-understand":
		d.MustUnderstand = true
	case "must-revalidate":
		d.MustRevalidate = true
	case "proxy-revalidate":
		d.ProxyRevalidate = true
	case "only-if-cached":
		d.OnlyIfCached = true
	}
}

// firstDelta keeps the first valid occurrence of a duplicated directive.
func firstDelta(have, next time.Duration) time.Duration {
	if have >= 0 {
		return have
	}
	return next
}

// parseDelta reads delta-seconds; invalid values give -1.
func parseDelta(v string) time.Duration {
	if v == "" {
		return -1
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
	}
	n, err := strconv.ParseInt(v, 10, 64) // digits only: err is overflow
	if err != nil || n > maxDelta {
		n = maxDelta
	}
	return time.Duration(n) * time.Second
}

// splitDirectives splits on commas outside quoted strings.
func splitDirectives(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// ParseAge reads the Age header (RFC 9111 §5.1); invalid or absent is 0.
//
// A list ("Age: 7200, 0", or the field repeated) counts by its first
// member (RFC 9111 §5.1); a value that is not a non-negative integer is
// ignored, as absent.
func ParseAge(h http.Header) time.Duration {
	first, _, _ := strings.Cut(h.Get("Age"), ",")
	d := parseDelta(strings.TrimSpace(first))
	return max(d, 0)
}

// VaryNames lists the request header names a response varies on,
// canonical and sorted. A "*" makes the response unusable for any other
// request; it is reported as star.
func VaryNames(h http.Header) (names []string, star bool) {
	seen := map[string]bool{}
	for _, line := range h.Values("Vary") {
		for _, n := range strings.Split(line, ",") {
			n = strings.TrimSpace(n)
			switch {
			case n == "*":
				return nil, true
			case n != "" && !seen[http.CanonicalHeaderKey(n)]:
				seen[http.CanonicalHeaderKey(n)] = true
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	slices.Sort(names)
	return names, false
}

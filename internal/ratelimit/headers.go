package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxPause caps how long one upstream response can pause an upstream, so a
// wrong date or a huge number cannot silence it for good.
const MaxPause = time.Hour

// PauseFor reports how long an upstream asked callers to stop, read from a
// 429 or 503 response's Retry-After (seconds or HTTP-date), RateLimit
// (IETF draft, r=0;t=N), RateLimit-Reset, or X-RateLimit-Reset (seconds, or a
// Unix time). Other statuses never pause.
func PauseFor(status int, h http.Header, now time.Time) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	for _, parse := range []func(http.Header, time.Time) (time.Duration, bool){
		func(h http.Header, now time.Time) (time.Duration, bool) {
			return ParseRetryAfter(h.Get("Retry-After"), now)
		},
		parseRateLimit,
		func(h http.Header, now time.Time) (time.Duration, bool) {
			return parseReset(h.Get("RateLimit-Reset"), now)
		},
		func(h http.Header, now time.Time) (time.Duration, bool) {
			return parseReset(h.Get("X-RateLimit-Reset"), now)
		},
	} {
		if d, ok := parse(h, now); ok {
			return min(d, MaxPause), true
		}
	}
	return 0, false
}

// ParseRetryAfter parses a Retry-After value (RFC 9110 §10.2.3): a number of
// seconds or an HTTP-date. A date in the past gives zero.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, ok := parseSeconds(v); ok {
		return secs, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, t.Sub(now)), true
}

// parseSeconds reads a non-negative integer number of seconds, capped.
func parseSeconds(v string) (time.Duration, bool) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false
	}
	if n > uint64(MaxPause/time.Second) {
		return MaxPause, true
	}
	return time.Duration(n) * time.Second, true
}

// epochThreshold separates a delta in seconds from a Unix timestamp in
// X-RateLimit-Reset, whose meaning varies by vendor.
const epochThreshold = 1_000_000_000

func parseReset(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 || n != n {
		return 0, false
	}
	if n >= epochThreshold {
		if n > float64(now.Add(MaxPause).Unix()) {
			return MaxPause, true
		}
		return max(0, time.Unix(int64(n), 0).Sub(now)), true
	}
	if n > MaxPause.Seconds() {
		return MaxPause, true
	}
	return time.Duration(n * float64(time.Second)), true
}

// parseRateLimit reads the IETF RateLimit header, in its structured form
// (`"default";r=0;t=30`) or the older one (`limit=10, remaining=0, reset=30`),
// and reports a pause only when no quota remains.
func parseRateLimit(h http.Header, now time.Time) (time.Duration, bool) {
	v := h.Get("RateLimit")
	if v == "" {
		return 0, false
	}
	params := map[string]string{}
	for _, item := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if ok {
			params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
		}
	}
	remaining, reset := params["r"], params["t"]
	if remaining == "" {
		remaining, reset = params["remaining"], params["reset"]
	}
	if remaining != "0" {
		return 0, false
	}
	return parseReset(reset, now)
}

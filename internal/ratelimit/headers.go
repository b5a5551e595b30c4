package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// MaxPause caps how long one upstream response can pause an upstream, so a
// wrong date or a huge number cannot silence it for good.
const MaxPause = time.Hour

// PauseFor reports how long an upstream asked callers to stop, read from a
// 429 or 503 response's Retry-After (seconds or HTTP-date), or from its
// quota headers (RateLimit, RateLimit-Reset, X-RateLimit-Reset, the reset
// of x-ratelimit-*-requests). Other statuses never pause: their quota
// headers are read by ParseQuota.
func PauseFor(status int, h http.Header, now time.Time) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	if d, ok := ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return min(d, MaxPause), true
	}
	if q, ok := ParseQuota(h, now); ok && q.Remaining == 0 {
		return q.Reset, true
	}
	for _, name := range []string{"RateLimit-Reset", "X-RateLimit-Reset"} {
		if d, ok := parseReset(h.Get(name), now); ok {
			return d, true
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

// parseReset reads a reset given as seconds from now (a decimal allowed)
// or as a Unix time, capped at MaxPause.
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

// Quota is what a vendor's quota headers say of the window in force.
type Quota struct {
	// Remaining is how many calls the vendor will still accept in the window.
	Remaining int64
	// Reset is how long until the window's quota is restored.
	Reset time.Duration
}

// ParseQuota reads the remaining quota and its reset from any response, in
// the forms vendors use, first found wins:
//   - RateLimit (draft-ietf-httpapi-ratelimit-headers, structured:
//     `"default";r=0;t=30`; of several policies, the one with least left),
//     or its older dictionary form `limit=10, remaining=0, reset=30`;
//   - RateLimit-Remaining with RateLimit-Reset (earlier drafts);
//   - X-RateLimit-Remaining with X-RateLimit-Reset (seconds, or a Unix time);
//   - x-ratelimit-remaining-requests with x-ratelimit-reset-requests (a
//     duration such as "1s" or "6m0s").
func ParseQuota(h http.Header, now time.Time) (Quota, bool) {
	// The names are written canonical, so that looking them up on every
	// answer costs no allocation.
	if q, ok := parseRateLimitField(h["Ratelimit"], now); ok {
		return q, true
	}
	for _, p := range [...]struct {
		remaining, reset string
		duration         bool
	}{
		{"Ratelimit-Remaining", "Ratelimit-Reset", false},
		{"X-Ratelimit-Remaining", "X-Ratelimit-Reset", false},
		{"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests", true},
	} {
		remaining := first(h[p.remaining])
		if remaining == "" {
			continue
		}
		rem, err := strconv.ParseInt(strings.TrimSpace(remaining), 10, 64)
		if err != nil || rem < 0 {
			continue
		}
		var reset time.Duration
		var ok bool
		if p.duration {
			reset, ok = parseResetDuration(first(h[p.reset]))
		} else {
			reset, ok = parseReset(first(h[p.reset]), now)
		}
		if ok {
			return Quota{Remaining: rem, Reset: reset}, true
		}
	}
	return Quota{}, false
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// parseResetDuration reads a reset written as a Go-style duration ("1s",
// "6m0s", "20ms"), as LLM APIs send it.
func parseResetDuration(v string) (time.Duration, bool) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, false
	}
	return min(d, MaxPause), true
}

// parseRateLimitField reads the RateLimit field: a structured list of
// policies with r (remaining) and t (reset seconds) parameters, or the
// older dictionary with remaining and reset members.
func parseRateLimitField(v []string, now time.Time) (Quota, bool) {
	if len(v) == 0 {
		return Quota{}, false
	}
	if list, err := httpsfv.UnmarshalList(v); err == nil {
		best, found := Quota{}, false
		for _, m := range list {
			item, ok := m.(httpsfv.Item)
			if !ok {
				continue
			}
			q, ok := quotaOf(item.Params, "r", "t", now)
			if ok && (!found || q.Remaining < best.Remaining || (q.Remaining == best.Remaining && q.Reset > best.Reset)) {
				best, found = q, true
			}
		}
		if found {
			return best, true
		}
	}
	if dict, err := httpsfv.UnmarshalDictionary(v); err == nil {
		params := httpsfv.NewParams()
		for _, name := range []string{"remaining", "reset"} {
			if m, ok := dict.Get(name); ok {
				if item, ok := m.(httpsfv.Item); ok {
					params.Add(name, item.Value)
				}
			}
		}
		return quotaOf(params, "remaining", "reset", now)
	}
	return Quota{}, false
}

// quotaOf reads an integer remaining and a reset in seconds from params.
func quotaOf(p *httpsfv.Params, remaining, reset string, now time.Time) (Quota, bool) {
	r, ok := p.Get(remaining)
	rem, isInt := r.(int64)
	if !ok || !isInt || rem < 0 {
		return Quota{}, false
	}
	t, ok := p.Get(reset)
	var secs string
	switch t := t.(type) {
	case int64:
		secs = strconv.FormatInt(t, 10)
	case float64:
		secs = strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return Quota{}, false
	}
	if !ok {
		return Quota{}, false
	}
	d, ok := parseReset(secs, now)
	return Quota{Remaining: rem, Reset: d}, ok
}

package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Part is what a Range request gets from a stored complete 200 (RFC 9110
// §14): the whole body (Whole), the bytes First to Last inclusive, or
// nothing satisfiable (416).
type Part struct {
	Whole       bool
	First, Last int64
	Satisfiable bool
}

// PartOf answers a request's Range and If-Range from a stored 200 (RFC
// 9110 §13.1.5, §14.2). The whole body is served (Whole) when there is no
// Range, its unit is not bytes, it does not parse, it asks for several
// ranges (a server may ignore a Range, and Seawall sends no multipart
// answers), the body is empty, or an If-Range does not hold.
func PartOf(req http.Header, e *Entry) Part {
	whole := Part{Whole: true}
	rng := req["Range"]
	if e.Status != http.StatusOK || len(rng) != 1 {
		return whole
	}
	if ir := req["If-Range"]; len(ir) > 0 && (len(ir) > 1 || !ifRangeHolds(ir[0], e.Header)) {
		return whole
	}
	size := int64(len(e.Body))
	spec, ok := singleRange(rng[0])
	if !ok || size == 0 {
		return whole
	}
	first, last, ok := spec.bounds(size)
	if !ok {
		return whole
	}
	if first < 0 {
		return Part{} // unsatisfiable: 416
	}
	return Part{First: first, Last: last, Satisfiable: true}
}

// ContentRange is the Content-Range of a part of size bytes: "bytes
// first-last/size", or "bytes */size" for an unsatisfiable one.
func (p Part) ContentRange(size int64) string {
	if !p.Satisfiable {
		return "bytes */" + strconv.FormatInt(size, 10)
	}
	return "bytes " + strconv.FormatInt(p.First, 10) + "-" + strconv.FormatInt(p.Last, 10) + "/" + strconv.FormatInt(size, 10)
}

// rangeSpec is one range-spec: first "-" [last], or "-" suffix.
type rangeSpec struct {
	first, last string // digits; last may be empty; first empty: a suffix of last bytes
}

// singleRange reads a Range value holding exactly one byte range (empty
// list elements allowed, RFC 9110 §5.6.1.2); ok is false for another unit,
// bad syntax, or several ranges.
func singleRange(v string) (rangeSpec, bool) {
	unit, set, ok := strings.Cut(v, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return rangeSpec{}, false
	}
	var spec rangeSpec
	found := false
	for _, el := range strings.Split(set, ",") {
		el = strings.Trim(el, " \t")
		if el == "" {
			continue
		}
		if found {
			return rangeSpec{}, false // several ranges
		}
		first, last, ok := strings.Cut(el, "-")
		if !ok || !digits(first) || !digits(last) || (first == "" && last == "") {
			return rangeSpec{}, false
		}
		spec, found = rangeSpec{first, last}, true
	}
	return spec, found
}

// bounds are the inclusive bounds of a valid spec over size bytes; first
// is -1 when it is unsatisfiable, and ok false when it is invalid (last
// before first).
func (s rangeSpec) bounds(size int64) (first, last int64, ok bool) {
	if s.first == "" { // suffix-range
		n, ok := parseLength(s.last)
		if !ok || n == 0 {
			return -1, 0, true
		}
		return max(size-n, 0), size - 1, true
	}
	first, fok := parseLength(s.first)
	last = size - 1
	if s.last != "" {
		l, lok := parseLength(s.last)
		if lok && fok && l < first {
			return 0, 0, false
		}
		if lok {
			last = min(l, size-1)
		}
	}
	if !fok || first >= size {
		return -1, 0, true // beyond the end (or too large to read): unsatisfiable
	}
	return first, last, true
}

// parseLength reads digits as a count; ok is false when it overflows.
func parseLength(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// digits reports whether s is all ASCII digits, or empty.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ifRangeHolds evaluates If-Range against a stored response (RFC 9110
// §13.1.5): an entity tag must match its ETag by strong comparison; a date
// must equal its Last-Modified, and that Last-Modified be strong (at
// least a second before its Date, §8.8.2.2).
func ifRangeHolds(v string, h http.Header) bool {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		etag := h.Get("ETag")
		return !strings.HasPrefix(v, "W/") && !strings.HasPrefix(etag, "W/") && len(v) >= 2 && v[len(v)-1] == '"' && v == etag
	}
	since, ok := ParseHTTPDate(v)
	if !ok {
		return false
	}
	lm, ok := ParseHTTPDate(h.Get("Last-Modified"))
	if !ok || !lm.Equal(since) {
		return false
	}
	date, ok := ParseHTTPDate(h.Get("Date"))
	return ok && date.Sub(lm) >= time.Second
}

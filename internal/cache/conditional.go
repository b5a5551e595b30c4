package cache

import (
	"net/http"
	"strings"
)

// NotModified reports whether a request's own conditions let it be
// answered 304 from a stored 200 (RFC 9111 §4.3.2, RFC 9110 §13.2.2):
// If-None-Match, when present, decides alone (a weak comparison, "*"
// matching any ETag); otherwise If-Modified-Since, an HTTP-date, against
// Last-Modified.
func NotModified(req http.Header, e *Entry) bool {
	if e.Status != http.StatusOK {
		return false
	}
	if inm := req["If-None-Match"]; len(inm) > 0 {
		etag := e.Header.Get("ETag")
		if etag == "" {
			return false
		}
		for _, line := range inm {
			for _, tag := range strings.Split(line, ",") {
				tag = strings.TrimSpace(tag)
				if tag == "*" || weakMatch(tag, etag) {
					return true
				}
			}
		}
		return false
	}
	ims := req["If-Modified-Since"] // canonical already: no canonicalizing per call
	if len(ims) == 0 || ims[0] == "" {
		return false // the usual request: no conditions of its own
	}
	since, ok := ParseHTTPDate(ims[0])
	if !ok {
		return false
	}
	// Last-Modified, else Date, else when it was received (RFC 9111 §4.3.2).
	lm, ok := ParseHTTPDate(e.Header.Get("Last-Modified"))
	if !ok {
		lm, ok = ParseHTTPDate(e.Header.Get("Date"))
	}
	if !ok {
		lm, ok = e.ResponseTime, !e.ResponseTime.IsZero()
	}
	return ok && !lm.After(since)
}

// weakMatch compares two entity tags ignoring W/ (RFC 9110 §8.8.3.2).
func weakMatch(a, b string) bool {
	a, b = strings.TrimPrefix(a, "W/"), strings.TrimPrefix(b, "W/")
	return len(a) >= 2 && a[0] == '"' && a[len(a)-1] == '"' && a == b
}

// notModifiedHeaders are the fields a 304 carries (RFC 9110 §15.4.5).
var notModifiedHeaders = []string{"Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary", "Last-Modified"}

// NotModifiedHeader is the header of a 304 answering for e.
func NotModifiedHeader(e *Entry) http.Header {
	h := http.Header{}
	for _, k := range notModifiedHeaders {
		if vs := e.Header.Values(k); len(vs) > 0 {
			h[http.CanonicalHeaderKey(k)] = vs
		}
	}
	return h
}

// caseless are request fields whose values compare without case, so
// that a Vary on them keys equivalent requests alike.
var caseless = map[string]bool{"Accept": true, "Accept-Encoding": true, "Accept-Charset": true, "Accept-Language": true}

// VaryValue is a request field's value as a Vary key uses it: list
// members trimmed and joined with ", ", whitespace runs inside a member
// made one space, and lower-cased for fields whose syntax is caseless.
// Equivalent requests thus share an entry; different ones never do.
func VaryValue(h http.Header, name string) string {
	var members []string
	for _, line := range h.Values(name) {
		for _, m := range strings.Split(line, ",") {
			m = strings.Join(strings.Fields(m), " ")
			m = strings.ReplaceAll(strings.ReplaceAll(m, " ;", ";"), "; ", ";")
			if m != "" {
				members = append(members, m)
			}
		}
	}
	v := strings.Join(members, ", ")
	if caseless[http.CanonicalHeaderKey(name)] {
		v = strings.ToLower(v)
	}
	return v
}

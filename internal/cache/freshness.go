package cache

import (
	"net/http"
	"time"
)

// Entry is a stored response with the times RFC 9111's age calculation
// needs. Build one with NewEntry, and do not change it afterwards: it is
// shared by every request it answers.
type Entry struct {
	Status       int
	Header       http.Header
	Body         []byte
	RequestTime  time.Time // when the request that fetched it was sent
	ResponseTime time.Time // when its response arrived

	// What a hit would otherwise work out from the header every time,
	// when sealed: the corrected_initial_age, and the freshness facts.
	initialAge time.Duration
	facts      facts
	sealed     bool
	targets    []string // Overrides.Targets it was stored under
}

// facts are what the entry's header says of its freshness.
type facts struct {
	cc        Directives    // its Cache-Control, or the targeted field that replaces it
	explicit  time.Duration // s-maxage, max-age or Expires minus Date
	stated    bool          // whether explicit is stated
	heuristic time.Duration // the heuristic lifetime, 0 when none applies
}

// NewEntry is a response to keep, its initial age and freshness facts
// worked out once rather than on every hit; targets are the targeted
// fields of the policy it is stored under (Overrides.Targets).
func NewEntry(status int, h http.Header, body []byte, sent, received time.Time, targets []string) *Entry {
	e := &Entry{Status: status, Header: h, Body: body, RequestTime: sent, ResponseTime: received, targets: targets}
	e.initialAge, e.facts, e.sealed = e.correctedInitialAge(), e.readFacts(), true
	return e
}

// freshness is the entry's facts, read now if it was not built by NewEntry.
func (e *Entry) freshness() facts {
	if e.sealed {
		return e.facts
	}
	return e.readFacts()
}

// entryOverhead approximates the bookkeeping bytes of an entry beyond its
// header and body, so that many tiny entries still count.
const entryOverhead = 256

// Size is the entry's weight against the store's byte limit.
func (e *Entry) Size() int64 {
	n := int64(len(e.Body)) + entryOverhead
	for k, vs := range e.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

// Overrides are a route's settings that stand in for missing response directives.
type Overrides struct {
	TTL                  time.Duration // freshness when the response states none
	StaleWhileRevalidate time.Duration // at least this stale-while-revalidate
	StaleIfError         time.Duration // at least this stale-if-error
	// StoreSetCookie allows storing a response with Set-Cookie (which the
	// caller strips before storing it).
	StoreSetCookie bool
	// Targets are the targeted cache-control fields that, when present,
	// govern in place of Cache-Control (RFC 9213), canonical and first
	// first; nil is DefaultTargets, an empty list none.
	Targets []string
}

// heuristicStatuses may be cached without explicit freshness (RFC 9110 §15.1).
var heuristicStatuses = map[int]bool{200: true, 203: true, 204: true, 300: true, 301: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// understoodStatuses are those whose caching rules Seawall implements, for
// must-understand: the default-cacheable ones and the temporary redirects.
var understoodStatuses = map[int]bool{200: true, 203: true, 204: true, 300: true, 301: true, 302: true, 307: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// Storable reports whether a shared cache may store this response to a GET
// (RFC 9111 §3), and why not.
func Storable(req http.Header, status int, resp http.Header, o Overrides) (bool, string) {
	rq := ParseCacheControl(req)
	rs, targeted := ResponseDirectives(resp, o.Targets)
	switch _, star := VaryNames(resp); {
	case rs.MustUnderstand && !understoodStatuses[status]:
		return false, "must-understand"
	case rq.NoStore || (rs.NoStore && !rs.MustUnderstand):
		return false, "no-store"
	case rs.Private:
		return false, "private"
	case star:
		return false, "vary-star"
	case status == http.StatusPartialContent || req.Get("Range") != "":
		// Seawall keeps only complete responses (RFC 9111 §3.3 allows
		// keeping parts; it does not).
		return false, "partial"
	case len(resp.Values("Set-Cookie")) > 0 && !o.StoreSetCookie:
		// Another caller must never get this caller's cookie.
		return false, "set-cookie"
	case !heuristicStatuses[status] && !explicitFreshness(rs, resp, targeted):
		return false, "status"
	case req.Get("Authorization") != "" && !rs.Public && rs.SMaxAge < 0 && !rs.MustRevalidate && o.TTL <= 0:
		// RFC 9111 §3.5. The key holds the credential, so when it is stored
		// it is still only served to the same credential.
		return false, "authorization"
	}
	e := Entry{Status: status, Header: resp, targets: o.Targets}
	useful := e.Lifetime(o) > 0 || resp.Get("ETag") != "" || resp.Get("Last-Modified") != "" ||
		max(rs.StaleIfError, o.StaleIfError) > 0
	if !useful {
		return false, "no-freshness"
	}
	return true, ""
}

// explicitFreshness says the response states its freshness; targeted says
// its directives came from a targeted field, and Expires is then ignored.
func explicitFreshness(cc Directives, h http.Header, targeted bool) bool {
	return cc.MaxAge >= 0 || cc.SMaxAge >= 0 || cc.Public || (!targeted && h.Get("Expires") != "")
}

// Lifetime is the freshness lifetime (RFC 9111 §4.2.1): s-maxage, max-age,
// Expires minus Date, the route's ttl, then the heuristic of 10% of the time
// since Last-Modified (at most a day) for statuses that allow it.
func (e *Entry) Lifetime(o Overrides) time.Duration {
	f := e.freshness()
	switch {
	case f.stated:
		return f.explicit
	case o.TTL > 0:
		return o.TTL
	}
	return f.heuristic
}

// KeepFor is how long from now, at most, the entry can serve a request:
// its freshness left, then the longest stale window its header or o
// allows. A cache level that expires entries keeps it this long.
func (e *Entry) KeepFor(now time.Time, o Overrides) time.Duration {
	cc := e.freshness().cc
	stale := max(cc.StaleWhileRevalidate, o.StaleWhileRevalidate, cc.StaleIfError, o.StaleIfError, 0)
	return max(0, e.Lifetime(o)-e.Age(now)+stale)
}

// readFacts reads the freshness facts from the entry's header.
func (e *Entry) readFacts() facts {
	cc, targeted := ResponseDirectives(e.Header, e.targets)
	f := facts{cc: cc}
	switch {
	case f.cc.SMaxAge >= 0:
		f.explicit, f.stated = f.cc.SMaxAge, true
	case f.cc.MaxAge >= 0:
		f.explicit, f.stated = f.cc.MaxAge, true
	case !targeted && e.Header.Get("Expires") != "":
		f.stated = true
		exp, ok := ParseHTTPDate(e.Header.Get("Expires"))
		if ok && len(e.Header.Values("Expires")) == 1 {
			f.explicit = max(0, exp.Sub(e.date()))
		} // else 0: an invalid Expires means already expired (§5.3)
	}
	// Heuristic freshness: for statuses that allow it, and for any response
	// marked public (RFC 9111 §4.2.2).
	if lm, ok := ParseHTTPDate(e.Header.Get("Last-Modified")); ok && (heuristicStatuses[e.Status] || f.cc.Public) {
		f.heuristic = min(e.date().Sub(lm)/10, 24*time.Hour)
	}
	return f
}

// date is the response's Date, or when it arrived if it has none.
func (e *Entry) date() time.Time {
	if d, ok := ParseHTTPDate(e.Header.Get("Date")); ok {
		return d
	}
	return e.ResponseTime
}

// Age is the entry's current age (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	initial := e.initialAge
	if !e.sealed {
		initial = e.correctedInitialAge()
	}
	return initial + now.Sub(e.ResponseTime)
}

// correctedInitialAge is the age the entry had when it arrived.
func (e *Entry) correctedInitialAge() time.Duration {
	apparent := max(0, e.ResponseTime.Sub(e.date()))
	corrected := ParseAge(e.Header) + e.ResponseTime.Sub(e.RequestTime)
	return max(apparent, corrected)
}

// Verdict is what a cache may do with an entry for one request.
type Verdict struct {
	Fresh bool          // serve without contacting the upstream
	TTL   time.Duration // freshness left; negative when stale
	// ServeWhileRevalidating: stale, but may be served while one background
	// request revalidates it (stale-while-revalidate).
	ServeWhileRevalidating bool
	// ServeOnError: stale, but may be served if the upstream fails
	// (stale-if-error).
	ServeOnError bool
}

// Judge decides how an entry may serve a request with directives rq at now.
func (e *Entry) Judge(rq Directives, now time.Time, o Overrides) Verdict {
	rs := e.freshness().cc
	age, life := e.Age(now), e.Lifetime(o)
	left := life - age
	v := Verdict{TTL: left}
	mustRevalidate := rs.MustRevalidate || rs.ProxyRevalidate
	fresh := left > 0 && !rs.NoCache && !rq.NoCache &&
		(rq.MaxAge < 0 || age <= rq.MaxAge) && (rq.MinFresh < 0 || left >= rq.MinFresh)
	if fresh {
		v.Fresh = true
		return v
	}
	stale := -left
	if !mustRevalidate && !rs.NoCache && !rq.NoCache && left <= 0 && (rq.MaxStaleAny || (rq.MaxStale >= 0 && stale <= rq.MaxStale)) {
		v.Fresh = true // the client accepts this much staleness (§5.2.1.2)
		return v
	}
	if mustRevalidate || rs.NoCache || left > 0 {
		return v // must revalidate; stale-serving applies only to stale entries
	}
	v.ServeWhileRevalidating = !rq.NoCache && stale <= max(rs.StaleWhileRevalidate, o.StaleWhileRevalidate)
	v.ServeOnError = stale <= max(rs.StaleIfError, o.StaleIfError)
	return v
}

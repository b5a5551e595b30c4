package cache

import (
	"net/http"
	"strconv"

	"github.com/dunglas/httpsfv"
)

// DefaultTargets are the targeted cache-control fields Seawall obeys
// unless a cache policy names others (targeted_fields): as a shared cache
// in front of origins, it takes the one aimed at CDNs. Names are canonical.
var DefaultTargets = []string{"Cdn-Cache-Control"}

// ResponseDirectives are the directives that govern this cache for a
// response: those of the first of targets, in order (RFC 9213 §2.2), with
// a valid, non-empty value, and then targeted is true and the response's
// Cache-Control and Expires are ignored; else its Cache-Control. targets
// are canonical names; nil is DefaultTargets, an empty list none.
func ResponseDirectives(h http.Header, targets []string) (d Directives, targeted bool) {
	if targets == nil {
		targets = DefaultTargets
	}
	for _, name := range targets {
		if d, ok := parseTargeted(h[name]); ok {
			return d, true
		}
	}
	return ParseCacheControl(h), false
}

// parseTargeted reads a targeted field, a Structured Fields dictionary
// (RFC 9213 §2.1); ok is false when it is absent, empty or does not parse,
// and the field is then ignored. A directive whose value is not of the
// type its definition infers (an integer number of seconds, or a flag) is
// not consumed.
func parseTargeted(lines []string) (Directives, bool) {
	d := Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
	if len(lines) == 0 {
		return d, false
	}
	dict, err := httpsfv.UnmarshalDictionary(lines)
	if err != nil || len(dict.Names()) == 0 {
		return d, false
	}
	for _, name := range dict.Names() {
		m, _ := dict.Get(name)
		item, ok := m.(httpsfv.Item)
		if !ok {
			continue
		}
		switch v := item.Value.(type) {
		case int64:
			if v >= 0 {
				d.set(name, strconv.FormatInt(v, 10), true)
			}
		case bool:
			if v {
				d.set(name, "", false)
			}
		}
	}
	return d, true
}

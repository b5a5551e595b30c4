// Package testcallers lists the ways a request names its caller, for the
// tests that check one caller never gets another's cached answer or job:
// in one Seawall and across replicas sharing a cache.
package testcallers

// Form is a way a request names its caller under Policy's
// `rate_limit: {key_header: X-Tenant}` and `cache: {identity_headers:
// [X-Api-Key]}`: each is another caller to the cache and to idempotency
// keys. Header is a name and a value, or nil.
type Form struct {
	Name   string
	Header []string
}

// Forms are the caller forms, each a caller of its own.
var Forms = []Form{
	{"nothing", nil},
	{"bearer alice", []string{"Authorization", "Bearer alice"}},
	{"bearer bob", []string{"Authorization", "Bearer bob"}},
	{"basic", []string{"Authorization", "Basic YWxpY2U6cHc="}},
	{"token scheme", []string{"Authorization", "Token alice"}},
	{"cookie alice", []string{"Cookie", "session=alice"}},
	{"cookie bob", []string{"Cookie", "session=bob"}},
	{"api key", []string{"X-Api-Key", "k1"}},
	{"other api key", []string{"X-Api-Key", "k2"}},
	{"tenant", []string{"X-Tenant", "acme"}},
	{"other tenant", []string{"X-Tenant", "globex"}},
}

// Way is one caller to the cache: a form, or a key header or key query
// value; Query is "" or "?…".
type Way struct {
	Name   string
	Query  string
	Header []string
}

// CacheWays are the callers the cache tells apart under Policy.
func CacheWays() []Way {
	ways := make([]Way, 0, len(Forms)+3)
	for _, f := range Forms {
		ways = append(ways, Way{f.Name, "", f.Header})
	}
	return append(ways, Way{"region", "", []string{"X-Region", "eu"}},
		Way{"account query", "?account=1", nil}, Way{"other account", "?account=2", nil})
}

// Policy is the upstream (indented four spaces) under which CacheWays are
// each another caller.
const Policy = `    mode: cached
    retry: {max_attempts: 1}
    rate_limit: {key_header: X-Tenant}
    cache: {identity_headers: [X-Api-Key], key_headers: [X-Region], key_query: [account]}
`

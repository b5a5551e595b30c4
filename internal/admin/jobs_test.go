package admin

import (
	"testing"

	"github.com/seawall/seawall/internal/jobs"
)

// Trust, item 4: the operator's job view shows every credential header
// redacted, not only Authorization and Cookie: any header whose name holds
// key, token, secret, auth, cookie, signature, password or credential, and
// any the config marks as one.
// Before, a custom credential header (X-Client-Key) showed in clear.
func TestJobDetailRedactsCredentialHeaders(t *testing.T) {
	const canary = "canary-header-secret-91b2"
	h := map[string][]string{"Content-Type": {"application/json"}, "X-Request-Source": {"billing"}, "X-Partner-Sig": {canary}}
	credentials := []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Client-Key", "X-Api-Key", "Api-Key",
		"X-Auth-Token", "X-Webhook-Signature", "Client-Secret", "X-Password", "X-Credential"}
	for _, name := range credentials {
		h[name] = []string{canary}
	}
	// X-Partner-Sig matches no default word: the config marks it.
	marked := func(name string) bool { return name == "X-Partner-Sig" }
	d := detail(jobs.Job{ID: 1, Delivery: jobs.Delivery{Upstream: "api", Method: "POST", Path: "/v1/x", Header: h}}, marked)
	for _, name := range append(credentials, "X-Partner-Sig") {
		if got := d.Header[name]; len(got) != 1 || got[0] != "[redacted]" {
			t.Errorf("%s shows %q, want [redacted]", name, got)
		}
	}
	for _, name := range []string{"Content-Type", "X-Request-Source"} {
		if got := d.Header[name]; len(got) != 1 || got[0] != h[name][0] {
			t.Errorf("%s shows %q, want %q: only credentials are redacted", name, got, h[name][0])
		}
	}
}

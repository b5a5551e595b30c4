package upstream

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/seawall/seawall/internal/config"
)

// A request carrying none of the identity and key headers skips the
// hashing, and must get the key the hashing would give it; a request
// carrying any of them, with any value, must never get that key.
func TestKeyHashOfAnAnonymousRequestIsTheComputedOne(t *testing.T) {
	c := &config.Cache{IdentityHeaders: []string{"x-api-user"}, KeyHeaders: []string{"X-Region"}}
	rc := newCachePolicy(c, newCaller(c, "x-tenant"))
	anonymous := rc.KeyHash(http.Header{"Accept": {"*/*"}})
	if computed := rc.hash(http.Header{}); anonymous != computed {
		t.Fatalf("anonymous key %s, the computed one %s", anonymous, computed)
	}
	// Present without values is the same caller as absent: both hash alike.
	if got := rc.KeyHash(http.Header{"Authorization": {}}); got != anonymous {
		t.Errorf("Authorization without values: key %s, want the anonymous %s", got, anonymous)
	}
	seen := map[[32]byte]string{anonymous: "anonymous"}
	for _, h := range []http.Header{
		{"Authorization": {"Bearer a"}},
		{"Authorization": {"Bearer b"}},
		{"Authorization": {""}},
		{"Cookie": {"s=1"}},
		{"X-Api-User": {"alice"}},
		{"X-Tenant": {"acme"}},
		{"X-Region": {"eu"}},
		{"X-Region": {"eu", "us"}},
	} {
		k := rc.KeyHash(h)
		if other, ok := seen[k]; ok {
			t.Errorf("%v shares its key with %s", h, other)
		}
		seen[k] = fmt.Sprint(h)
	}
}

package proxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/seawall/seawall/internal/fakeapi"
)

func TestOneJSONLogLinePerRequestWithoutSecrets(t *testing.T) {
	s := newStack(t, "", `    headers: {Authorization: Bearer sk_live_TOPSECRET}
    retry: {max_attempts: 1}
`)
	s.get("/api/ok")
	s.fake.Set(fakeapi.Behavior{Down: true})
	s.get("/api/down")
	s.get("/nope/x")
	lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines for 3 requests:\n%s", len(lines), s.logs.String())
	}
	want := []struct {
		path   string
		status float64
		source string
	}{{"/api/ok", 200, "upstream"}, {"/api/down", 503, "upstream"}, {"/nope/x", 404, "seawall"}}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, line)
		}
		level := "INFO"
		if want[i].status >= 500 {
			level = "WARN" // docs/operations.md: 5xx answers are logged at warn
		}
		if rec["level"] != level || rec["path"] != want[i].path || rec["status"] != want[i].status || rec["source"] != want[i].source {
			t.Errorf("line %d = %v, want %s %s %v from %s", i, rec, level, want[i].path, want[i].status, want[i].source)
		}
		if id, _ := rec["request_id"].(string); len(id) < 16 {
			t.Errorf("line %d request_id = %q", i, id)
		}
	}
	if strings.Contains(s.logs.String(), "TOPSECRET") {
		t.Error("an injected credential reached the log")
	}
}

func TestPerTenantQuotas(t *testing.T) {
	s := newStack(t, "", `    rate_limit: {rate: 1/m, burst: 1, key_header: X-Tenant, on_limit: reject}
`)
	send := func(tenant string) int {
		req, _ := http.NewRequest(http.MethodGet, s.sw.URL+"/api/x", nil)
		req.Header.Set("X-Tenant", tenant)
		return s.do(req).status
	}
	if a1, a2, b1 := send("a"), send("a"), send("b"); a1 != 200 || a2 != 429 || b1 != 200 {
		t.Errorf("tenant a: %d then %d, tenant b: %d; want 200, 429, 200", a1, a2, b1)
	}
	if n := s.fake.Count(); n != 2 {
		t.Errorf("upstream got %d calls, want 2", n)
	}
}

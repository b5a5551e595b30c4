package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Acceptance 1: three independent mistakes are all reported with their
// lines, and the exit status is non-zero.
func TestValidateReportsAllProblems(t *testing.T) {
	bad := `listen: 127.0.0.1:8080
upstreams:
  payments:
    url: https://api.example.com
    rate_limit:
      rate: 50 per second
    breaker:
      failure_rate: 150
    retry:
      max_attempts: 0
`
	path := filepath.Join(t.TempDir(), "seawall.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-c", path}, &stdout, &stderr); code == 0 {
		t.Fatalf("exit 0 for a bad config; stderr:\n%s", stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{
		path + ":6 upstreams.payments.rate_limit.rate: invalid rate",
		path + ":8 upstreams.payments.breaker.failure_rate: must be a percentage",
		path + ":10 upstreams.payments.retry.max_attempts: must be >= 1",
		"3 problem(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// serve refuses the same config the same way, before listening.
	stderr.Reset()
	if code := run([]string{"serve", "-c", path}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "3 problem(s)") {
		t.Errorf("serve: exit %d, stderr %q; want 1 and the problems", code, stderr.String())
	}
}

func TestValidateExample(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-c", "../../examples/seawall.yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d for the example config:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok") {
		t.Errorf("stdout = %q, want ok", stdout.String())
	}
}

func TestUsageErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr.String())
	}
	if code := run([]string{"validate", "-c", "/nonexistent.yaml"}, &stdout, &stderr); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

// Hardening, row 15: a mistyped command gets a suggestion, serve's help
// names the signals and the environment it reads, and version says what
// was built.
func TestHelpVersionAndSuggestions(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"srve"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `did you mean "serve"?`) {
		t.Errorf("seawall srve: exit %d, stderr %q; want a suggestion of serve", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || strings.Contains(stderr.String(), "did you mean") {
		t.Errorf("seawall frobnicate: exit %d, stderr %q; want no suggestion for a word near nothing", code, stderr.String())
	}
	stderr.Reset()
	run([]string{"serve", "-h"}, &stdout, &stderr)
	for _, want := range []string{"SIGTERM", "SIGINT", "SIGHUP", "shutdown_grace", "${NAME}", "SEAWALL_ADMIN_TOKEN", "-c"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve -h does not mention %s:\n%s", want, stderr.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "seawall ") || !strings.Contains(stdout.String(), "go1.") {
		t.Errorf("seawall version: exit %d, %q; want the version and Go's", code, stdout.String())
	}
}

// testAdminToken is the admin token of the configs these tests write.
const testAdminToken = "seawall-test-admin-token"

// withToken sends testAdminToken with every request through rt.
func withToken(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+testAdminToken)
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

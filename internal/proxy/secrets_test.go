package proxy_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
)

// Trust, item 4: an endpoint's URL names it in every metric label, and
// with the password of a URL such as https://user:pass@host it must show
// redacted there, as the admin view shows it. Before, the endpoint
// metrics carried the password in clear.
func TestEndpointLabelsNeverCarryTheURLsPassword(t *testing.T) {
	const canary = "canary-url-password-7f3a"
	up := httptest.NewServer(fakeapi.New(fakeapi.Behavior{}))
	defer up.Close()
	s := newStackURL(t, "", strings.Replace(up.URL, "http://", "http://user:"+canary+"@", 1), "")
	if r := s.get("/api/v1/x"); r.status != 200 {
		t.Fatalf("call through an endpoint with credentials in its URL: %d %s", r.status, r.body)
	}
	families, err := s.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labelled := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), canary) {
					t.Errorf("%s{%s=%q} carries the URL's password", f.GetName(), l.GetName(), l.GetValue())
				}
				if l.GetName() == "endpoint" {
					labelled++
				}
			}
		}
	}
	if labelled == 0 {
		t.Fatal("no metric named an endpoint: the test would prove nothing")
	}
}

// The config marks as credentials the headers it injects into an
// upstream's requests and those that name a caller (identity_headers, the
// upstream's and its routes'); the operator's job view redacts them. A
// reload that drops one unmarks it.
func TestConfigMarksCredentialHeaders(t *testing.T) {
	s := newStack(t, "", `    headers: {X-Partner-Sig: "s3cr3t"}
    cache: {identity_headers: [X-User]}
    routes:
      - {match: "GET /v1/r", cache: {identity_headers: [X-Route-Caller]}}
`)
	for name, want := range map[string]bool{"X-Partner-Sig": true, "x-partner-sig": true, "X-User": true, "X-Route-Caller": true,
		"Content-Type": false, "X-Request-Source": false} {
		if got := s.ups.CredentialHeader(name); got != want {
			t.Errorf("CredentialHeader(%q) = %v, want %v", name, got, want)
		}
	}
	cfg, err := config.Parse("reload.yaml", []byte(strings.Replace(s.doc, `    headers: {X-Partner-Sig: "s3cr3t"}`+"\n", "", 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s.proxy.Apply(cfg)
	if s.ups.CredentialHeader("X-Partner-Sig") {
		t.Error("a header the reloaded config no longer injects is still marked")
	}
}

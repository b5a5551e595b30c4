package proxy_test

import (
	"net/http/httptest"
	"strings"
	"testing"

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

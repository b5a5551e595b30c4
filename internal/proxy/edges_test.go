package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/vendortest"
)

// Trust, item 5: a vendor whose answer fails before anything of it has
// been relayed (its body cut short by a reset, a declared length never
// reached) is answered 502 upstream-outcome-unknown as problem+json, the
// vendor may have acted, and the log says 502; never an empty reply with
// a 200 in the log. A stream (no length) cut before its first byte, too.
func TestVendorBodyCutBeforeRelayIs502(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ head, body string }{
		"length, part sent":    {"HTTP/1.1 200 OK\r\nContent-Length: 100", `{"partial":`},
		"length, nothing sent": {"HTTP/1.1 200 OK\r\nContent-Length: 100", ""},
		"chunked, cut in size": {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := vendortest.CutAnswer(t, tc.head, tc.body)
			s := newStackURL(t, "", v.URL, "    retry: {max_attempts: 1}\n")
			r := s.post("/api/v1/charges", `{"amount":1}`, nil)
			if r.err != nil || r.status != http.StatusBadGateway || problemOf(t, r)["type"] != "urn:seawall:problem:upstream-outcome-unknown" {
				t.Fatalf("got %d %q (%v), want 502 upstream-outcome-unknown", r.status, r.body, r.err)
			}
			if !strings.Contains(s.logs.String(), `"status":502`) || strings.Contains(s.logs.String(), `"status":200`) {
				t.Errorf("the log does not say 502: %s", s.logs.String())
			}
		})
	}
}

// Trust, item 5: a vendor's own 499 is the vendor's answer, relayed as
// any status is; only Seawall's own 499 (the app went away) cuts the
// connection. Before, the vendor's 499 became a dropped connection.
func TestVendors499IsRelayed(t *testing.T) {
	t.Parallel()
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(499)
		_, _ = w.Write([]byte("client closed, says the vendor"))
	}))
	defer vendor.Close()
	s := newStackURL(t, "", vendor.URL, "    retry: {max_attempts: 1}\n")
	r := s.get("/api/v1/x")
	if r.err != nil || r.status != 499 || r.body != "client closed, says the vendor" || r.header.Get("Seawall-Source") != "upstream" {
		t.Errorf("got %d %q from %q (%v), want the vendor's 499 relayed", r.status, r.body, r.header.Get("Seawall-Source"), r.err)
	}
}

// Trust, item 5: a route matches the path as a vendor that decodes it
// reads it, so that neither an encoded slash nor a segment's path
// parameters (";x", which Java servers strip) slips a request past its
// route's policy; a dot segment behind path parameters ("..;") is
// refused. Before, "/d%2f1" and "/d;x/1" fell to the upstream's default
// mode, and "..;" was forwarded.
func TestRoutesMatchThePathAsTheVendorReadsIt(t *testing.T) {
	t.Parallel()
	s := newAsyncStack(t, filepath.Join(t.TempDir(), "jobs.db"), "sync", "", `    routes:
      - {name: deferred-d, match: "POST /d/{id}", mode: deferred}
`)
	for _, path := range []string{"/api/d/1", "/api/d%2f1", "/api/d%2F1", "/api/d;x/1", "/api/d;jsessionid=abc/1"} {
		if r := s.post(path, `{}`, nil); r.status != http.StatusAccepted {
			t.Errorf("POST %s: %d %s, want 202 from the deferred route", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/api/d/..;/admin", "/api/..;/x", "/api/d/%2e%2e;/x"} {
		if r := s.post(path, `{}`, nil); r.status != http.StatusBadRequest || problemOf(t, r)["type"] != "urn:seawall:problem:bad-path" {
			t.Errorf("POST %s: %d %s, want 400 bad-path", path, r.status, r.body)
		}
	}
	eventually(t, 10*time.Second, "the five deferred jobs delivered", func() bool { return s.fake.Count() >= 5 })
	time.Sleep(200 * time.Millisecond) // room for a wrong delivery to show
	if n := s.fake.Count(); n != 5 {
		t.Errorf("the vendor got %d calls, want the 5 deferred jobs: the refused paths are never sent", n)
	}
}

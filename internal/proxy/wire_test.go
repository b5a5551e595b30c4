package proxy_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/seawall/seawall/internal/vendortest"
)

// fastRetries is an upstream's retry policy for the wire tests: three
// attempts, with backoffs too short to slow a test.
const fastRetries = "    retry: {max_attempts: 3, base_delay: 1ms, max_delay: 5ms}\n"

// Vendor fidelity, acceptance 6: a connection reset after the whole
// request was written is upstream-outcome-unknown, and a request without
// an Idempotency-Key is then never sent again; with a key it is retried.
// A reset before anything of the request was sent is retried for any
// method.
func TestResetAfterTheRequestIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	wire := vendortest.ResetAfterRequest(t)
	s := newStackURL(t, "", wire.URL, fastRetries)

	r := s.post("/api/v1/charges", `{"amount":100}`, nil)
	p := problemOf(t, r)
	if r.status != 502 || p["type"] != "urn:seawall:problem:upstream-outcome-unknown" {
		t.Fatalf("POST without key: %d %v, want 502 upstream-outcome-unknown", r.status, p["type"])
	}
	if !strings.Contains(p["hint"].(string), "may have acted") || !strings.Contains(p["hint"].(string), "no Idempotency-Key") {
		t.Errorf("hint %q does not say the vendor may have acted, nor that the request had no key", p["hint"])
	}
	if n := wire.Requests(); n != 1 {
		t.Errorf("the vendor read the unkeyed POST %d times, want once", n)
	}

	r = s.post("/api/v1/charges", `{"amount":100}`, map[string]string{"Idempotency-Key": "charge-7"})
	p = problemOf(t, r)
	if r.status != 502 || p["type"] != "urn:seawall:problem:upstream-outcome-unknown" || !strings.Contains(p["hint"].(string), "same key is safe") {
		t.Errorf("keyed POST: %d %v %q, want 502 upstream-outcome-unknown saying a retry with the key is safe", r.status, p["type"], p["hint"])
	}
	if n := wire.Requests() - 1; n != 3 {
		t.Errorf("the vendor read the keyed POST %d times, want 3 (max_attempts)", n)
	}
	if got := s.metric("breaker_transitions_total", "state=open"); got != 0 {
		t.Errorf("breaker opened %v times", got)
	}
}

func TestResetBeforeAnythingIsSentIsRetried(t *testing.T) {
	t.Parallel()
	wire := vendortest.ResetDuringHandshake(t)
	s := newStackURL(t, "", wire.URL, fastRetries)
	r := s.post("/api/v1/charges", `{"amount":100}`, nil)
	p := problemOf(t, r)
	if r.status != 502 || p["type"] != "urn:seawall:problem:retries-exhausted" {
		t.Errorf("POST reset in the handshake: %d %v (%v), want 502 retries-exhausted", r.status, p["type"], p["detail"])
	}
	if n := wire.Connections(); n != 3 {
		t.Errorf("%d connections, want 3: nothing was sent, so even an unkeyed POST is retried", n)
	}
}

// Vendor fidelity, acceptance 7: an HTTPS vendor signed by a private CA
// works with tls.ca_file; a wrong server name is refused once, not
// retried, with the TLS problem type; a vendor that requires a client
// certificate works with cert_file and key_file, and refuses without.
func TestUpstreamTLS(t *testing.T) {
	t.Parallel()
	ca := vendortest.NewCA(t)
	start := func(clientAuth bool) (*httptest.Server, *atomic.Int64) {
		var handshakes atomic.Int64
		up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"ok":true}`))
		}))
		up.TLS = ca.ServerConfig(t, clientAuth)
		up.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { handshakes.Add(1); return nil, nil }
		up.StartTLS()
		t.Cleanup(up.Close)
		return up, &handshakes
	}
	up, _ := start(false)
	cert, key := ca.ClientFiles(t)
	for _, tc := range []struct {
		name, tls  string
		clientAuth bool
		status     int
		problem    string
	}{
		{"system roots refuse a private CA", "", false, 502, "upstream-tls"},
		{"private CA", fmt.Sprintf("{ca_file: %s}", ca.File), false, 200, ""},
		{"wrong server name", fmt.Sprintf("{ca_file: %s, server_name: pay.example.com}", ca.File), false, 502, "upstream-tls"},
		{"mutual TLS without a certificate", fmt.Sprintf("{ca_file: %s}", ca.File), true, 502, "upstream-tls"},
		{"mutual TLS", fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", ca.File, cert, key), true, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, handshakes := up, (*atomic.Int64)(nil)
			if tc.clientAuth || tc.status != 200 {
				u, handshakes = start(tc.clientAuth)
			}
			extra := fastRetries
			if tc.tls != "" {
				extra += "    tls: " + tc.tls + "\n"
			}
			s := newStackURL(t, "", u.URL, extra)
			r := s.get("/api/v1/x")
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.problem == "" {
				return
			}
			if p := problemOf(t, r); p["type"] != "urn:seawall:problem:"+tc.problem || p["attempts"] != float64(1) {
				t.Errorf("problem %v after %v attempts, want %s after 1", p["type"], p["attempts"], tc.problem)
			}
			if n := handshakes.Load(); n != 1 {
				t.Errorf("%d handshakes, want 1: a certificate error is not retried", n)
			}
		})
	}
}

// config.md's claim for upstreams.<name>.http2: unset, an HTTPS vendor
// that offers HTTP/2 is called over HTTP/1.1 (Seawall's own client);
// with http2: true, over HTTP/2.
func TestUpstreamHTTP2IsChosen(t *testing.T) {
	t.Parallel()
	ca := vendortest.NewCA(t)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Proto))
	}))
	up.TLS = ca.ServerConfig(t, false)
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	for _, tc := range []struct{ extra, want string }{
		{"", "HTTP/1.1"},
		{"    http2: true\n", "HTTP/2.0"},
	} {
		s := newStackURL(t, "", up.URL, fmt.Sprintf("    tls: {ca_file: %s}\n", ca.File)+tc.extra)
		if r := s.get("/api/v1/x"); r.status != 200 || r.body != tc.want {
			t.Errorf("with %q: %d %q, want 200 %q", tc.extra, r.status, r.body, tc.want)
		}
	}
}

package upstream

import (
	"net/http"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// Limits are the limits of the config in force that are not an upstream's
// own: the handler and the job workers read them, and a reload replaces
// them whole with the upstreams (Set.Apply). A call keeps the limits it
// started with.
type Limits struct {
	MaxRequest   int64         // limits.max_request_body
	MaxResponse  int64         // limits.max_response_body
	BodyRead     time.Duration // limits.body_read_timeout
	WriteTimeout time.Duration // limits.write_timeout
	MaxResult    int64         // jobs.max_result: the most of a deferred job's answer kept

	callbackHosts map[string]bool // jobs.callbacks.allowed_hosts, lower-cased
	credentials   map[string]bool // header names the config marks as credentials, canonical
}

// limitsOf reads a validated config's limits.
func limitsOf(cfg *config.Config) *Limits {
	return &Limits{
		MaxRequest:    int64(cfg.Limits.MaxRequestBody),
		MaxResponse:   int64(cfg.Limits.MaxResponseBody),
		BodyRead:      cfg.Limits.BodyReadTimeout.D(),
		WriteTimeout:  cfg.Limits.WriteTimeout.D(),
		MaxResult:     int64(cfg.Jobs.MaxResult),
		callbackHosts: HostSet(cfg.Jobs.Callbacks.AllowedHosts),
		credentials:   credentialHeaders(cfg),
	}
}

// HostSet is a list of host names, lower-cased for lookup.
func HostSet(hosts []string) map[string]bool {
	set := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		set[strings.ToLower(h)] = true
	}
	return set
}

// credentialHeaders are the header names the config marks as credentials:
// those it injects into an upstream's requests (headers), and those that
// name a caller (a cache policy's identity_headers).
func credentialHeaders(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	add := func(c *config.Cache) {
		if c != nil {
			for _, h := range c.IdentityHeaders {
				out[http.CanonicalHeaderKey(h)] = true
			}
		}
	}
	for _, u := range cfg.Upstreams {
		for h := range u.Headers {
			out[http.CanonicalHeaderKey(h)] = true
		}
		add(u.Cache)
		for _, r := range u.Routes {
			if r != nil {
				add(r.Cache)
			}
		}
	}
	return out
}

// Limits are the limits in force.
func (s *Set) Limits() *Limits { return s.limits.Load() }

// CallbackAllowed reports whether host is in jobs.callbacks.allowed_hosts
// as now in force: checked at enqueue, and again when a callback is sent.
func (s *Set) CallbackAllowed(host string) bool {
	return s.Limits().callbackHosts[strings.ToLower(host)]
}

// CredentialHeader reports whether the config in force marks header name
// as a credential, which the operator's job view shows redacted.
func (s *Set) CredentialHeader(name string) bool {
	return s.Limits().credentials[http.CanonicalHeaderKey(name)]
}

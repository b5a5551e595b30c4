package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

const validDoc = `listen: 127.0.0.1:8080
upstreams:
  payments:
    url: https://api.example.com/v1
    headers:
      Authorization: "Bearer ${PAY_KEY}"
    rate_limit:
      rate: 50/s
      burst: 5
    retry:
      max_attempts: 4
    routes:
      - match: "POST /charges"
        retry:
          max_attempts: 1
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse("seawall.yaml", []byte(validDoc), env(map[string]string{"PAY_KEY": "sk_live_1"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	u := cfg.Upstreams["payments"]
	if got, want := u.Headers["Authorization"].Value(), "Bearer sk_live_1"; got != want {
		t.Errorf("header = %q, want %q", got, want)
	}
	if got := u.RateLimit.Rate.PerSecond(); got != 50 {
		t.Errorf("rate = %v/s, want 50", got)
	}
	if got := u.Routes[0].Retry.MaxAttempts; got != 1 {
		t.Errorf("route max_attempts = %d, want 1", got)
	}
	if got := u.Routes[0].Retry.BaseDelay.D(); got != DefaultRetryBaseDelay {
		t.Errorf("route base_delay = %v, want inherited %v", got, DefaultRetryBaseDelay)
	}
	if got := u.Routes[0].Timeouts.Overall.D(); got != DefaultOverallTimeout {
		t.Errorf("route overall timeout = %v, want %v", got, DefaultOverallTimeout)
	}
	if got := u.Breaker.FailureStatuses; len(got) != 1 || got[0] != "5xx" {
		t.Errorf("failure statuses = %v, want defaults", got)
	}
	if cfg.Engine != EngineFastHTTP {
		t.Errorf("engine = %q, want the default, %s", cfg.Engine, EngineFastHTTP)
	}
}

func TestParseReportsEveryProblemWithLine(t *testing.T) {
	doc := `listen: 127.0.0.1:8080
upstreams:
  payments:
    url: ftp://api.example.com
    rate_limit:
      rate: fast
    retry:
      max_attempts: 0
      bakeoff: 1s
`
	_, err := Parse("seawall.yaml", []byte(doc), env(nil))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	want := []string{
		`seawall.yaml:4 upstreams.payments.url: scheme must be http or https, got "ftp"`,
		`seawall.yaml:6 upstreams.payments.rate_limit.rate: invalid rate "fast"`,
		`seawall.yaml:8 upstreams.payments.retry.max_attempts: must be >= 1`,
		`seawall.yaml:9 upstreams.payments.retry.bakeoff: unknown key`,
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, ps[i].String(), w)
		}
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", "config is empty"},
		{"syntax", "upstreams: [\n", "seawall.yaml:"},
		{"no upstreams", "listen: 127.0.0.1:1\n", "upstreams: at least one upstream is required"},
		{"missing env", "upstreams:\n  a:\n    url: http://x\n    headers:\n      X-Key: ${NOPE}\n", "seawall.yaml:5 upstreams.a.headers.X-Key: environment variable NOPE is not set"},
		{"bad pattern", "upstreams:\n  a:\n    url: http://x\n    routes:\n      - match: GET\n", "seawall.yaml:5 upstreams.a.routes[0].match: invalid pattern"},
		{"wrong type", "upstreams:\n  a:\n    url: http://x\n    retry:\n      max_attempts: lots\n", `seawall.yaml:5 upstreams.a.retry.max_attempts: got str "lots", want int`},
		// One line, several keys: the one whose value is wrong is named.
		{"wrong type in a flow mapping", "upstreams:\n  a:\n    url: http://x\n    breaker: {window: 30s, failure_rate: 50%, max_open_duration: 1s}\n", `seawall.yaml:4 upstreams.a.breaker.failure_rate: got str "50%", want float64`},
		{"suggestion", "upstreams:\n  a:\n    url: http://x\n    retyr: {}\n", `unknown key (did you mean "retry"?)`},
		{"reserved", "upstreams:\n  _seawall:\n    url: http://x\n", "name must be lower-case"},
		{"reserved prefix", "upstreams:\n  seawall_callbacks:\n    url: http://x\n", "names starting with seawall are reserved"},
		{"callbacks unsigned", "jobs: {callbacks: {allowed_hosts: [app:8080]}}\nupstreams:\n  a:\n    url: http://x\n", "jobs.callbacks.secret: required when allowed_hosts is set"},
		{"callback secret", "jobs: {callbacks: {allowed_hosts: [app], secret: short}}\nupstreams:\n  a:\n    url: http://x\n", "jobs.callbacks.secret: webhook secret"},
		{"callback host", "jobs: {callbacks: {allowed_hosts: [\"http://app/x\"], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}}\nupstreams:\n  a:\n    url: http://x\n", "jobs.callbacks.allowed_hosts[0]: must be a host or host:port"},
		{"deferred typo", "upstreams:\n  a:\n    url: http://x\n    mode: defered\n", `upstreams.a.mode: "defered" is not one of sync, cached, async, deferred (did you mean "deferred"?)`},
		{"enum far off", "upstreams:\n  a:\n    url: http://x\n    rate_limit: {on_limit: queue}\n", `upstreams.a.rate_limit.on_limit: "queue" is not one of wait, reject`},
		{"log level typo", "log: {level: infoo}\nupstreams:\n  a:\n    url: http://x\n", `log.level: "infoo" is not one of debug, info, warn, error (did you mean "info"?)`},
		{"engine unknown", "engine: fast\nupstreams:\n  a:\n    url: http://x\n", `engine: "fast" is not one of net/http, fasthttp`},
		{"timeouts", "upstreams:\n  a:\n    url: http://x\n    timeouts: {per_try: 5s, overall: 1s}\n", "per_try: must not exceed overall"},
		{"status", "upstreams:\n  a:\n    url: http://x\n    breaker:\n      failure_statuses: [\"6xx\"]\n", `failure_statuses[0]: invalid status "6xx"`},
		{"admin token", "admin:\n  listen: 0.0.0.0:9090\n  token: short\nupstreams:\n  a:\n    url: http://x\n", "admin.token: is 5 bytes; at least 16"},
		{"route budget", "upstreams:\n  a:\n    url: http://x\n    routes:\n      - match: /x\n        retry: {budget: {ratio: 1}}\n", "seawall.yaml:6 upstreams.a.routes[0].retry.budget: the retry budget is per upstream"},
		{"schedule", "jobs: {schedule: [10s, 0s]}\nupstreams:\n  a:\n    url: http://x\n", "seawall.yaml:1 jobs.schedule[1]: must be > 0"},
		{"negative duration", "upstreams:\n  a:\n    url: http://x\n    timeouts: {connect: -1s}\n", "must not be negative"},
		{"url and endpoints", "upstreams:\n  a:\n    url: http://x\n    endpoints: [{url: http://y}]\n", "seawall.yaml:3 upstreams.a.url: set url (one endpoint) or endpoints, not both"},
		{"no url", "upstreams:\n  a:\n    mode: sync\n", "upstreams.a.url: required (or endpoints)"},
		{"endpoint url", "upstreams:\n  a:\n    endpoints:\n      - url: http://x\n      - url: ftp://y\n", `seawall.yaml:5 upstreams.a.endpoints[1].url: scheme must be http or https, got "ftp"`},
		{"endpoint twice", "upstreams:\n  a:\n    endpoints: [{url: http://x}, {url: http://x}]\n", "upstreams.a.endpoints[1].url: listed twice"},
		{"endpoint weight", "upstreams:\n  a:\n    endpoints: [{url: http://x, weight: 0}]\n", "upstreams.a.endpoints[0].weight: must be in [1, 1000]"},
		{"some zones", "upstreams:\n  a:\n    endpoints: [{url: http://x, zone: a}, {url: http://y}]\n", "upstreams.a.endpoints: name a zone for every endpoint or for none"},
		{"zone name", "zone: \"a b\"\nupstreams:\n  a:\n    url: http://x\n", "seawall.yaml:1 zone: must be letters"},
		{"percent", "upstreams:\n  a:\n    url: http://x\n    health: {max_isolated: lots}\n", `upstreams.a.health.max_isolated: invalid percentage "lots"`},
		{"max isolated", "upstreams:\n  a:\n    url: http://x\n    health: {max_isolated: 150%}\n", "upstreams.a.health.max_isolated: must be at most 100%"},
		{"probe share", "upstreams:\n  a:\n    url: http://x\n    health: {probe_share: 0}\n", "upstreams.a.health.probe_share: must be in (0, 50%]"},
		{"money", "upstreams:\n  a:\n    url: http://x\n    cost: {per_call: 0.0000000001}\n", `upstreams.a.cost.per_call: invalid amount "0.0000000001"`},
		{"currency", "upstreams:\n  a:\n    url: http://x\n    cost: {per_call: \"1\", currency: dollars}\n", "upstreams.a.cost.currency: must be an ISO 4217 code"},
		{"route currency", "upstreams:\n  a:\n    url: http://x\n    cost: {per_call: \"1\"}\n    routes:\n      - {match: /x, cost: {per_call: \"2\", currency: EUR}}\n", "one upstream is priced in one currency"},
		{"quota none", "upstreams:\n  a:\n    url: http://x\n    quota: {timezone: UTC}\n", "upstreams.a.quota: set daily, monthly or both"},
		{"quota zone", "upstreams:\n  a:\n    url: http://x\n    quota: {daily: 1, timezone: Mars/Olympus}\n", `unknown time zone "Mars/Olympus"`},
		{"quota warn", "upstreams:\n  a:\n    url: http://x\n    quota: {daily: 1, warn_at: [95, 80]}\n", "upstreams.a.quota.warn_at[1]: must be percentages in [1, 99], rising"},
		{"isolation", "upstreams:\n  a:\n    url: http://x\n    health: {base_isolation: 1m, max_isolation: 30s}\n", "upstreams.a.health.max_isolation: must be >= base_isolation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("seawall.yaml", []byte(tt.doc), env(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEndpointsConfig(t *testing.T) {
	doc := `zone: a
upstreams:
  one:
    url: http://x/v1
  many:
    endpoints:
      - {url: "http://a1", zone: a}
      - {url: "http://b1", zone: b, weight: 3}
    health: {max_isolated: 34%, probe_share: 2, latency_floor: 80ms}
`
	cfg, err := Parse("seawall.yaml", []byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Zone != "a" {
		t.Errorf("zone = %q", cfg.Zone)
	}
	if got := cfg.Upstreams["one"].Endpoints; len(got) != 1 || got[0] != (Endpoint{URL: "http://x/v1", Weight: 1}) {
		t.Errorf("url shorthand gave endpoints %+v", got)
	}
	m := cfg.Upstreams["many"]
	if len(m.Endpoints) != 2 || m.Endpoints[0].Weight != 1 || m.Endpoints[1].Weight != 3 || m.Endpoints[1].Zone != "b" {
		t.Errorf("endpoints = %+v", m.Endpoints)
	}
	h := m.Health
	if h.MaxIsolated.Fraction() != 0.34 || h.ProbeShare.Fraction() != 0.02 || h.LatencyFloor.D() != 80*time.Millisecond {
		t.Errorf("health = %+v", h)
	}
	if h.MinCalls != 20 || h.Window.D() != 10*time.Second || h.BaseIsolation.D() != 10*time.Second || h.FailureFloor.Fraction() != 0.05 {
		t.Errorf("health defaults = %+v", h)
	}
}

func TestMoney(t *testing.T) {
	for in, want := range map[string]string{"0.002": "0.002", "1": "1.00", "12.5": "12.50", ".25": "0.25", "0.000000001": "0.000000001"} {
		m, err := ParseMoney(in)
		if err != nil || m.String() != want {
			t.Errorf("ParseMoney(%q) = %v (%v), want %s", in, m, err, want)
		}
	}
	for _, bad := range []string{"", ".", "-1", "1e3", "0.0000000001", "1,5", "9999999999"} {
		if _, err := ParseMoney(bad); err == nil {
			t.Errorf("ParseMoney(%q) accepted", bad)
		}
	}
	if m, _ := ParseMoney("0.002"); m*1000 != 2*MoneyScale {
		t.Errorf("1000 calls at 0.002 = %v, want exactly 2", m*1000)
	}
}

func TestSecretDefault(t *testing.T) {
	doc := "upstreams:\n  a:\n    url: http://x\n    headers:\n      X-A: ${UNSET:-dflt}\n      X-B: ${SET:-dflt}\n"
	cfg, err := Parse("c.yaml", []byte(doc), env(map[string]string{"SET": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Upstreams["a"].Headers
	if h["X-A"].Value() != "dflt" || h["X-B"].Value() != "v" {
		t.Errorf("X-A = %q, X-B = %q; want dflt, v", h["X-A"].Value(), h["X-B"].Value())
	}
}

func TestSecretFileAndRedaction(t *testing.T) {
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := "upstreams:\n  a:\n    url: http://x\n    headers:\n      X-Key: ${file:" + f + "}\n"
	cfg, err := Parse("c.yaml", []byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Upstreams["a"].Headers["X-Key"]
	if s.Value() != "s3cr3t" {
		t.Errorf("Value = %q, want s3cr3t", s.Value())
	}
	for _, shown := range []string{s.String(), s.LogValue().String()} {
		if strings.Contains(shown, "s3cr3t") {
			t.Errorf("secret shown as %q", shown)
		}
	}
}

func TestUnits(t *testing.T) {
	rates := map[string]float64{"100/s": 100, "6000/m": 100, "3600/h": 1, "5/10s": 0.5, " 2.5/s ": 2.5}
	for in, want := range rates {
		r, err := ParseRate(in)
		if err != nil || r.PerSecond() != want {
			t.Errorf("ParseRate(%q) = %v/s, %v; want %v/s", in, r.PerSecond(), err, want)
		}
	}
	for _, bad := range []string{"", "100", "0/s", "-1/s", "1/x", "NaN/s", "1/0s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) succeeded, want error", bad)
		}
	}
	sizes := map[string]int64{"512": 512, "1KiB": 1024, "1MiB": 1 << 20, "2 GiB": 2 << 30, "1KB": 1000, "10B": 10}
	for in, want := range sizes {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "1TiB", "99999999999999GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded, want error", bad)
		}
	}
	if d, err := ParseDuration("250ms"); err != nil || d != 250*time.Millisecond {
		t.Errorf("ParseDuration(250ms) = %v, %v", d, err)
	}
}

// Hardening, row 14: validate reports what serve would only find out
// later: a header value with a line break (here from a secret file), and
// a job store that cannot be created; each with its key's line.
func TestValidateCatchesWhatServeWouldMeet(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "key")
	if err := os.WriteFile(secret, []byte("abc\r\nX-Injected: 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := "jobs:\n  store: " + filepath.Join(notADir, "jobs.db") + "\nupstreams:\n  a:\n    url: http://x\n    mode: async\n    headers:\n      X-Key: ${file:" + secret + "}\n"
	_, err := Parse("seawall.yaml", []byte(doc), env(nil))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	for _, want := range []string{
		"seawall.yaml:2 jobs.store: cannot create " + filepath.Join(notADir, "jobs.db") + ": " + notADir + " is not a directory",
		"seawall.yaml:8 upstreams.a.headers.X-Key: the value holds a line break",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "X-Injected") {
		t.Errorf("the problem shows the secret's value:\n%v", err)
	}
}

// The tls checks docs/config.md states: insecure_skip_verify is refused
// off loopback unless allow_insecure says so, a CA file must hold a
// certificate, and cert_file and key_file go together.
func TestTLSValidation(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, tls, want string }{
		{"https://api.example.com", "{insecure_skip_verify: true}", "upstreams.a.tls.insecure_skip_verify: refused"},
		{"https://api.example.com", "{insecure_skip_verify: true, allow_insecure: true}", ""},
		{"https://127.0.0.1:8443", "{insecure_skip_verify: true}", ""},
		{"https://api.example.com", "{ca_file: " + notPEM + "}", "seawall.yaml:5 upstreams.a.tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{"https://api.example.com", "{cert_file: /x.pem}", "upstreams.a.tls.cert_file: cert_file and key_file go together"},
		{"https://api.example.com", `{min_version: "1.1"}`, "upstreams.a.tls.min_version: must be"},
	} {
		doc := "upstreams:\n  a:\n    url: " + tc.url + "\n    tls:\n      " + strings.Trim(tc.tls, "{}") + "\n"
		doc = strings.ReplaceAll(doc, ", ", "\n      ")
		_, err := Parse("seawall.yaml", []byte(doc), env(nil))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v, want accepted", tc.url, tc.tls, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %s: %v, want %q", tc.url, tc.tls, err, tc.want)
		}
	}
}

// Trust, item 6: validate warns, beside its errors, of what it accepts but
// an operator would not expect; a config with nothing of the kind has no
// warning, and a warning never refuses a config.
func TestValidateWarnings(t *testing.T) {
	dir := t.TempDir()
	const async = "    mode: async\n"
	for _, tt := range []struct {
		name, doc string
		want      string // "path: warning: ..." substring; "" for none
	}{
		{"quiet", "upstreams:\n  a:\n    url: http://x\n", ""},
		{"listen off loopback", "listen: 0.0.0.0:8080\nupstreams:\n  a:\n    url: http://x\n", "listen: warning: 0.0.0.0:8080 is reachable from other machines"},
		{"admin off loopback", "admin: {listen: \"10.0.0.5:9090\"}\nupstreams:\n  a:\n    url: http://x\n", "admin.listen: warning: 10.0.0.5:9090 is reachable from other machines"},
		{"weak token", "admin: {token: aaaaaaaabbbbbbbb}\nupstreams:\n  a:\n    url: http://x\n", "admin.token: warning: looks weak (only 2 distinct characters)"},
		{"placeholder token", "admin: {token: changeme-changeme-0123}\nupstreams:\n  a:\n    url: http://x\n", `admin.token: warning: looks weak (it holds "changeme")`},
		{"strong token", "admin: {token: 7f3a9c51b2e4d60818c2aa93f0b7e165}\nupstreams:\n  a:\n    url: http://x\n", ""},
		{"callback timeout", "jobs: {callbacks: {allowed_hosts: [app], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, timeout: 2m}}\nupstreams:\n  a:\n    url: http://x\n", "jobs.callbacks.timeout: warning: 2m0s is longer than a callback attempt may run (30s)"},
		{"fsync on postgres", "jobs: {store: \"postgres://db/seawall\", fsync: true}\nupstreams:\n  a:\n    url: http://x\n" + async, "jobs.fsync: warning: true on PostgreSQL leaves durability to the server's synchronous_commit"},
		{"fsync default on postgres", "jobs: {store: \"postgres://db/seawall\"}\nupstreams:\n  a:\n    url: http://x\n" + async, ""},
		{"store outside data_dir", "data_dir: " + filepath.Join(dir, "data") + "\njobs: {store: " + filepath.Join(dir, "jobs.db") + "}\nupstreams:\n  a:\n    url: http://x\n" + async, "jobs.store: warning: " + filepath.Join(dir, "jobs.db") + " is outside data_dir"},
		{"store inside data_dir", "data_dir: " + dir + "\njobs: {store: " + filepath.Join(dir, "jobs.db") + "}\nupstreams:\n  a:\n    url: http://x\n" + async, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("seawall.yaml", []byte(tt.doc), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("a warning refused the config: %v", err)
			}
			got := cfg.Warnings.Error()
			switch {
			case tt.want == "" && len(cfg.Warnings) > 0:
				t.Errorf("warnings %q, want none", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("warnings %q, want one containing %q", got, tt.want)
			}
			for _, w := range cfg.Warnings {
				if !w.Warning || w.Line == 0 {
					t.Errorf("%+v: want a warning with its line", w)
				}
			}
		})
	}
}

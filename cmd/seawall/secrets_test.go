package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// Trust, acceptance 6: canaries — the upstream URL's password, a header
// secret the config injects, the admin token, PagerDuty's routing key,
// the webhook secret, and an app's own credentials on an accepted job
// (Authorization and a custom X-Client-Key) — appear on no surface: not
// in the logs, not in any admin answer or /metrics, not in the CLI's
// output (incidents, jobs, dead letters, usage, shifts, validate), not
// in a notification (PagerDuty's routing key aside, in its own field).
func TestNoSecretOnAnySurface(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary through an incident; go test without -short runs it")
	}
	const clientCanary, appCanary = "client-key-canary-0e9b", "app-bearer-canary-77aa"
	r := newNotifyRig(t)
	req, _ := http.NewRequest(http.MethodPost, r.base+"/pay/v1/events", strings.NewReader(`{"e":1}`))
	req.Header.Set("X-Client-Key", clientCanary)
	req.Header.Set("Authorization", "Bearer "+appCanary)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	job := resp.Header.Get("Seawall-Job-Id")
	if resp.StatusCode != http.StatusAccepted || job == "" {
		t.Fatalf("the async request: %d, job %q", resp.StatusCode, job)
	}
	// An incident, so that every notification surface has something to say.
	r.fake.Set(fakeapi.Behavior{Down: true})
	r.load()
	r.waitFor("trigger", 1, 15*time.Second)
	r.halt()
	r.fake.Set(fakeapi.Behavior{})

	var seen bytes.Buffer
	ops := &http.Client{Transport: withToken(http.DefaultTransport)}
	for _, p := range []string{"/admin/incidents", "/admin/incidents/1", "/admin/events", "/admin/upstreams", "/admin/usage",
		"/admin/shifts", "/admin/jobs", "/admin/jobs/" + job, "/metrics", "/readyz", "/healthz",
		"/", "/assets/app.js", "/dashboard/session"} { // and the dashboard's page, script and session
		resp, err := ops.Get(r.admin + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, b)
		}
		seen.Write(b)
	}
	// The dashboard's stream: its first event is the full view, every
	// upstream's card, the incidents and the events.
	sresp, err := ops.Get(r.admin + "/dashboard/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(sresp.Body)
	first, _ := br.ReadString('\n')
	second, _ := br.ReadString('\n')
	_ = sresp.Body.Close()
	if !strings.HasPrefix(first, "event: snapshot") || !strings.Contains(second, `"upstreams"`) {
		t.Errorf("the dashboard's stream began %q %.80q", first, second)
	}
	seen.WriteString(first + second)
	// The CLI reads the config as the server does, secrets and all.
	t.Setenv("PD_ROUTING_KEY", routingCanary)
	t.Setenv("HOOK_SECRET", hookSecret)
	t.Setenv("PAY_KEY", apiCanary)
	for _, args := range [][]string{{"incidents", "list"}, {"incidents", "show", "1"}, {"incidents", "show", "1", "-format", "markdown"},
		{"jobs", "list"}, {"jobs", "show", job}, {"dead", "list"}, {"usage"}, {"shift", "list"}, {"validate"}} {
		var out, errb bytes.Buffer
		code := run(append(args, "-c", r.cfg), &out, &errb)
		if code != 0 {
			t.Errorf("seawall %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		seen.Write(out.Bytes())
		seen.Write(errb.Bytes())
	}
	for _, g := range r.hook.accepted() {
		seen.Write(g.body)
	}
	for _, g := range r.pd.accepted() {
		seen.Write(bytes.Replace(g.body, []byte(`"routing_key":"`+routingCanary+`"`), nil, 1))
	}
	r.logsMu.Lock()
	seen.Write(r.logs.Bytes())
	r.logsMu.Unlock()
	if !bytes.Contains(seen.Bytes(), []byte("[redacted]")) || !bytes.Contains(seen.Bytes(), []byte("X-Client-Key")) {
		t.Error("the job's headers are shown nowhere, redacted: the test would prove nothing")
	}
	for _, canary := range []string{routingCanary, hookSecret, strings.TrimPrefix(hookSecret, "whsec_"), apiCanary, urlCanary,
		testAdminToken, clientCanary, appCanary} {
		if i := bytes.Index(seen.Bytes(), []byte(canary)); i >= 0 {
			from, to := max(0, i-200), min(seen.Len(), i+len(canary)+50)
			t.Errorf("the secret %q appears: …%s…", canary, seen.Bytes()[from:to])
		}
	}
}

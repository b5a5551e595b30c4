package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/webhook"
)

// receiver records what a notification receiver is sent. It answers
// each POST with the next of its statuses, then 202.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []received
}

type received struct {
	at     time.Time
	header http.Header
	body   []byte
	status int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	status := http.StatusAccepted
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	rc.got = append(rc.got, received{at: time.Now(), header: r.Header.Clone(), body: b, status: status})
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// accepted are the bodies answered 2xx, in order.
func (rc *receiver) accepted() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, g := range rc.got {
		if g.status/100 == 2 {
			out = append(out, g)
		}
	}
	return out
}

// Canaries: none may appear anywhere but where it is meant to go.
const (
	routingCanary = "pd-canary-routing-key-7f3a9c"
	hookSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	apiCanary     = "vendor-api-key-canary-51b2"
	urlCanary     = "url-password-canary-c41d"
)

// notifyRig is a Seawall whose upstream "pay" is a fake, with PagerDuty
// and a webhook pointing at recording receivers.
type notifyRig struct {
	t         *testing.T
	fake      *fakeapi.Server
	pd, hook  *receiver
	cfg, base string
	admin     string
	bin       string
	proc      *exec.Cmd
	logs      *bytes.Buffer
	halt      func() // ends the load; a no-op without one
	logsMu    sync.Mutex
}

func newNotifyRig(t *testing.T, pdStatuses ...int) *notifyRig {
	r := &notifyRig{t: t, halt: func() {}, fake: fakeapi.New(fakeapi.Behavior{}), pd: &receiver{statuses: pdStatuses}, hook: &receiver{}, logs: &bytes.Buffer{}}
	up, pd, hook := httptest.NewServer(r.fake), httptest.NewServer(r.pd), httptest.NewServer(r.hook)
	t.Cleanup(up.Close)
	t.Cleanup(pd.Close)
	t.Cleanup(hook.Close)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	r.cfg, r.base, r.admin = filepath.Join(dir, "seawall.yaml"), "http://"+addr, "http://"+adminAddr
	doc := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: %s}
log: {level: info}
jobs: {store: %q}
incidents:
  resolve_after: 3s
  pagerduty: {routing_key: "${PD_ROUTING_KEY}", url: %q}
  webhooks:
    - {url: %q, secret: "${HOOK_SECRET}"}
upstreams:
  pay:
    url: %s
    headers: {X-Api-Key: "${PAY_KEY}"}
    breaker: {window: 2s, min_calls: 10, open_duration: 1s}
    retry: {max_attempts: 1}
    routes:
      - {name: events, match: "POST /v1/events", mode: async}
`, addr, adminAddr, testAdminToken, filepath.Join(dir, "jobs.db"), pd.URL, hook.URL, strings.Replace(up.URL, "http://", "http://seawall:"+urlCanary+"@", 1))
	if err := os.WriteFile(r.cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r.bin = buildSeawall(t)
	r.start()
	t.Cleanup(func() { r.halt(); _ = r.proc.Process.Kill(); _ = r.proc.Wait() })
	return r
}

// start runs the binary, its log kept for the canary check.
func (r *notifyRig) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "serve", "-c", r.cfg)
	cmd.Env = append(os.Environ(), "PD_ROUTING_KEY="+routingCanary, "HOOK_SECRET="+hookSecret, "PAY_KEY="+apiCanary)
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { r.logsMu.Lock(); defer r.logsMu.Unlock(); return r.logs.Write(p) })
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(r.base + "/_seawall/jobs/0"); err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatal("seawall serve did not start listening")
		}
	}
	r.proc = cmd
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// load sends GETs until halt, bounded in time.
func (r *notifyRig) load() {
	r.halt = appLoad(4, 10*time.Millisecond, 2*time.Minute, func(int, int) string { return r.base + "/pay/v1/items/1" }, nil)
}

// events reads /admin/events of type typ.
func (r *notifyRig) events(typ string) []incident.Event {
	r.t.Helper()
	resp, err := (&http.Client{Transport: withToken(http.DefaultTransport)}).Get(r.admin + "/admin/events?upstream=pay")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []incident.Event
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		r.t.Fatal(err)
	}
	var out []incident.Event
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls until n accepted notices of action have arrived at pd.
func (r *notifyRig) waitFor(action string, n int, limit time.Duration) []incident.PagerDutyEvent {
	r.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		var got []incident.PagerDutyEvent
		for _, g := range r.pd.accepted() {
			var ev incident.PagerDutyEvent
			if err := json.Unmarshal(g.body, &ev); err != nil {
				r.t.Fatalf("PagerDuty body %s: %v", g.body, err)
			}
			if ev.EventAction == action {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d %s notices within %s, want %d; PagerDuty got %d posts", len(got), action, limit, n, len(r.pd.got))
		}
	}
}

// Acceptance rows 1, 3 and 7 of incident signals: the vendor is down for
// 20s, its breaker flapping; PagerDuty gets one trigger within 2s of the
// breaker opening and one resolve with the same dedup_key after the
// quiet period; the webhook's signature verifies and its JSON is the
// documented shape; no secret appears anywhere it should not.
func TestIncidentNotifiesOncePerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20s outage; go test without -short runs it")
	}
	r := newNotifyRig(t)
	r.load()
	time.Sleep(2 * time.Second)
	r.fake.Set(fakeapi.Behavior{Down: true})
	time.Sleep(20 * time.Second)
	r.fake.Set(fakeapi.Behavior{})
	resolves := r.waitFor("resolve", 1, 20*time.Second)
	time.Sleep(2 * time.Second) // room for a wrong second notice
	r.halt()

	opened := r.events(incident.BreakerOpened)
	triggers := r.waitFor("trigger", 1, 0)
	if len(triggers) != 1 || len(resolves) != 1 {
		t.Errorf("PagerDuty got %d triggers and %d resolves, want one each", len(triggers), len(resolves))
	}
	if len(opened) < 5 {
		t.Errorf("the breaker opened %d times: the test wants it flapping", len(opened))
	}
	first := r.pd.accepted()[0]
	if d := first.at.Sub(opened[0].Time); d > 2*time.Second || d < 0 {
		t.Errorf("the trigger came %s after the breaker opened, want within 2s", d)
	}
	tr, res := triggers[0], resolves[0]
	if len(tr.Links) != 1 || tr.Links[0].Href != r.admin+"/admin/incidents/1" {
		t.Errorf("trigger links %+v, want the incident's timeline on the admin API", tr.Links)
	}
	if tr.DedupKey == "" || tr.DedupKey != res.DedupKey || tr.RoutingKey != routingCanary || tr.Payload == nil ||
		tr.Payload.Component != "pay" || tr.Payload.Severity != "error" || !strings.Contains(tr.Payload.Summary, "breaker opened") {
		t.Errorf("trigger %+v, resolve %+v", tr, res)
	}
	t.Logf("breaker opened %d times; trigger %s after the first, dedup_key %s; summary %q",
		len(opened), first.at.Sub(opened[0].Time).Round(time.Millisecond), tr.DedupKey, tr.Payload.Summary)

	// The webhook: signed, and the documented shape.
	key, _ := webhook.Key(hookSecret)
	hooks := r.hook.accepted()
	if len(hooks) != 2 {
		t.Fatalf("the webhook got %d notices, want a trigger and a resolve", len(hooks))
	}
	for i, h := range hooks {
		if err := webhook.Verify(key, h.header, h.body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook %d: signature: %v", i, err)
		}
		var body incident.WebhookBody
		dec := json.NewDecoder(bytes.NewReader(h.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			t.Errorf("webhook %d: not the documented shape: %v\n%s", i, err, h.body)
		}
		want := []string{"incident.triggered", "incident.resolved"}[i]
		if body.Type != want || body.Data.Incident.Upstream != "pay" || body.Data.Incident.ID == 0 {
			t.Errorf("webhook %d: %+v, want %s", i, body, want)
		}
	}

	// Row 7: no secret in the logs, the admin answers, or the payloads
	// (the routing key goes in its own field to PagerDuty, and nowhere else).
	var seen bytes.Buffer
	r.logsMu.Lock()
	seen.Write(r.logs.Bytes())
	r.logsMu.Unlock()
	ops := &http.Client{Transport: withToken(http.DefaultTransport)}
	for _, p := range []string{"/admin/incidents", "/admin/incidents/1", "/admin/events", "/admin/upstreams", "/metrics"} {
		resp, err := ops.Get(r.admin + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		seen.Write(b)
	}
	for _, h := range hooks {
		seen.Write(h.body)
	}
	for _, g := range r.pd.got {
		seen.Write(bytes.Replace(g.body, []byte(`"routing_key":"`+routingCanary+`"`), nil, 1))
	}
	for _, canary := range []string{routingCanary, hookSecret, strings.TrimPrefix(hookSecret, "whsec_"), apiCanary} {
		if bytes.Contains(seen.Bytes(), []byte(canary)) {
			t.Errorf("the secret %q appears in a log, an admin answer or a payload", canary)
		}
	}
}

// Acceptance row 2: PagerDuty answers 429 and then 500 to the first
// tries: the trigger still arrives; Seawall is killed between trigger and
// resolve: the resolve still arrives after the restart, exactly once.
func TestIncidentNoticesSurviveRefusalsAndAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("an outage across a restart; go test without -short runs it")
	}
	r := newNotifyRig(t, http.StatusTooManyRequests, http.StatusInternalServerError)
	r.load()
	time.Sleep(2 * time.Second)
	r.fake.Set(fakeapi.Behavior{Down: true})
	r.waitFor("trigger", 1, 20*time.Second)
	r.halt()
	_ = r.proc.Process.Signal(syscall.SIGKILL)
	_ = r.proc.Wait()
	r.start()
	r.load()
	time.Sleep(3 * time.Second) // still down after the restart
	r.fake.Set(fakeapi.Behavior{})
	r.waitFor("resolve", 1, 30*time.Second)
	time.Sleep(5 * time.Second) // room for a wrong second resolve
	r.halt()
	resolves := r.waitFor("resolve", 1, 0)
	triggers := r.waitFor("trigger", 1, 0)
	refused := 0
	for _, g := range r.pd.got {
		if g.status/100 != 2 {
			refused++
		}
	}
	t.Logf("PagerDuty refused %d tries; then got %d trigger(s) and %d resolve(s)", refused, len(triggers), len(resolves))
	if refused != 2 || len(triggers) != 1 || len(resolves) != 1 || triggers[0].DedupKey != resolves[0].DedupKey {
		t.Errorf("refused %d, triggers %+v, resolves %+v: want 2 refused, one of each with one dedup_key", refused, triggers, resolves)
	}
}

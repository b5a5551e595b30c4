package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/admin"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/proxy"
	"github.com/seawall/seawall/internal/testcallers"
	"github.com/seawall/seawall/internal/testdb"
	"github.com/seawall/seawall/internal/vendortest"
	"github.com/seawall/seawall/internal/webhook"
)

// forEachStore runs an async test over the embedded store and PostgreSQL.
func forEachStore(t *testing.T, test func(t *testing.T, store string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "jobs.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, testdb.PostgresURL(t)) })
}

// newAsyncStack is a stack whose "api" upstream is in the given mode, with
// a job store of its own at store, delivering. jobsYAML adds keys to jobs.
func newAsyncStack(t *testing.T, store, mode, jobsYAML, extra string) *stack {
	t.Helper()
	return newAsyncStackTop(t, "", store, mode, jobsYAML, extra)
}

// newAsyncStackTop is newAsyncStack with more top-level config.
func newAsyncStackTop(t *testing.T, top, store, mode, jobsYAML, extra string) *stack {
	t.Helper()
	return newStack(t, top+"\n"+fmt.Sprintf("jobs: {store: %q, %s}", store, jobsYAML), "    mode: "+mode+"\n"+extra)
}

// newAsyncStackURL is newAsyncStack in front of any upstream URL.
func newAsyncStackURL(t *testing.T, store, url, mode, jobsYAML, extra string) *stack {
	t.Helper()
	return newStackURL(t, fmt.Sprintf("jobs: {store: %q, %s}", store, jobsYAML), url, "    mode: "+mode+"\n"+extra)
}

type jobView struct {
	ID             string `json:"id"`
	State          string `json:"state"`
	Attempt        int    `json:"attempt"`
	ResponseStatus int    `json:"response_status"`
}

func (s *stack) job(t *testing.T, location string) jobView {
	t.Helper()
	r := s.get(location)
	var j jobView
	if r.status != 200 || json.Unmarshal([]byte(r.body), &j) != nil {
		t.Fatalf("GET %s: %d %s", location, r.status, r.body)
	}
	return j
}

func (s *stack) waitJob(t *testing.T, location, state string) jobView {
	t.Helper()
	var j jobView
	deadline := time.Now().Add(60 * time.Second)
	for j = s.job(t, location); j.State != state; j = s.job(t, location) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s after attempt %d, want %s", location, j.State, j.Attempt, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return j
}

func TestAsyncAcceptsThenDelivers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, store string) {
		s := newAsyncStack(t, store, "async", "base_delay: 20ms, max_delay: 100ms", "")
		r := s.post("/api/v1/notify?x=1", `{"msg":"hi"}`, map[string]string{"Content-Type": "application/json"})
		if r.status != 202 || r.header.Get("Seawall-Job-Id") == "" || r.header.Get("Location") != "/_seawall/jobs/"+r.header.Get("Seawall-Job-Id") {
			t.Fatalf("enqueue: %d %v %s", r.status, r.header, r.body)
		}
		j := s.waitJob(t, r.header.Get("Location"), "succeeded")
		calls := s.fake.Calls()
		if len(calls) != 1 {
			t.Fatalf("upstream got %d calls, want 1", len(calls))
		}
		c := calls[0]
		if c.Path != "/v1/notify?x=1" || c.Body != `{"msg":"hi"}` || c.Header.Get("Content-Type") != "application/json" ||
			!strings.HasPrefix(c.Header.Get("Idempotency-Key"), "seawall-") || strings.Contains(c.Header.Get("Idempotency-Key"), strings.Split(j.ID, "-")[1]) {
			t.Errorf("delivered %s %s %q key %q", c.Method, c.Path, c.Body, c.Header.Get("Idempotency-Key"))
		}
		if d, ok, q := s.metric("job_deliveries_total", "upstream=api", "outcome=succeeded"), s.metric("jobs", "upstream=api", "state=succeeded"),
			s.metric("jobs_queue_depth", "upstream=api"); d != 1 || ok != 1 || q != 0 {
			t.Errorf("metrics: %v deliveries succeeded, %v jobs succeeded, depth %v; want 1, 1, 0", d, ok, q)
		}
		if r := s.get("/_seawall/jobs/987654"); r.status != 404 || problemOf(t, r)["type"] != "urn:seawall:problem:unknown-job" {
			t.Errorf("unknown job: %d %s", r.status, r.body)
		}
		if r := s.get(r.header.Get("Location") + "/response"); r.status != 404 || problemOf(t, r)["type"] != "urn:seawall:problem:no-result" {
			t.Errorf("response of an async job: %d %s, want 404 no-result", r.status, r.body)
		}
	})
}

// Acceptance 5: one Idempotency-Key sent twice gives one job and one delivery.
func TestAsyncIdempotencyKeyGivesOneJobOneDelivery(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, store string) {
		s := newAsyncStack(t, store, "async", "base_delay: 20ms, max_delay: 100ms", "")
		key := map[string]string{"Idempotency-Key": "order-77"}
		a, b := s.post("/api/v1/charge", "{}", key), s.post("/api/v1/charge", "{}", key)
		if a.status != 202 || a.header.Get("Seawall-Job-Id") != b.header.Get("Seawall-Job-Id") || !strings.Contains(b.body, `"existing":true`) {
			t.Fatalf("two enqueues with one key: %s and %s", a.body, b.body)
		}
		s.waitJob(t, a.header.Get("Location"), "succeeded")
		c := s.post("/api/v1/charge", "{}", key) // after delivery, still the same job
		if c.header.Get("Seawall-Job-Id") != a.header.Get("Seawall-Job-Id") {
			t.Errorf("the key after delivery gave job %s, want %s", c.header.Get("Seawall-Job-Id"), a.header.Get("Seawall-Job-Id"))
		}
		time.Sleep(300 * time.Millisecond) // room for a wrong second delivery to show
		if calls := s.fake.Calls(); len(calls) != 1 || calls[0].Header.Get("Idempotency-Key") != "order-77" {
			t.Errorf("upstream got %d deliveries, want 1 carrying the app's key", len(calls))
		}
		if u := s.ups.UsageReports()[0].Today; u.SavedDedup != 2 || u.Billable != 1 {
			t.Errorf("usage %+v, want 1 billable call and 2 saved by deduplication", u)
		}
	})
}

// Acceptance 2: the upstream is down for 30s while jobs keep arriving. No
// attempt is spent while the breaker is open (only real upstream calls
// count as attempts), all jobs are delivered after recovery, and the
// upstream never sees more than the configured rate.
func TestAsyncOutageSpendsNoAttemptsAndKeepsTheRate(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30s outage per store; run without -short")
	}
	const outage, perSecond, rate, burst = 30 * time.Second, 5, 20, 5
	forEachStore(t, func(t *testing.T, store string) {
		t.Parallel()
		// Half-open probes are real calls and spend attempts: allow for them.
		s := newAsyncStack(t, store, "async", "max_attempts: 50, base_delay: 50ms, max_delay: 50ms", fmt.Sprintf(
			"    rate_limit: {rate: %d/s, burst: %d}\n    breaker: {min_calls: 4, failure_rate: 50, open_duration: 1s, half_open_calls: 1}\n", rate, burst))
		s.fake.Set(fakeapi.Behavior{Down: true})
		var locations []string
		send := func(i int) {
			r := s.post("/api/v1/event", fmt.Sprintf(`{"i":%d}`, i), nil)
			if r.status != 202 {
				t.Fatalf("enqueue %d: %d %s", i, r.status, r.body)
			}
			locations = append(locations, r.header.Get("Location"))
		}
		start, i := time.Now(), 0
		for time.Since(start) < outage {
			send(i)
			i++
			time.Sleep(time.Second / perSecond)
		}
		duringOutage := s.fake.Count()
		s.fake.Set(fakeapi.Behavior{})
		for j := 0; j < 50; j++ { // and more arrive after recovery
			send(i + j)
		}
		attempts := 0
		for _, l := range locations {
			attempts += s.waitJob(t, l, "succeeded").Attempt
		}
		calls := s.fake.Calls()
		if attempts != len(calls) {
			t.Errorf("jobs spent %d attempts for %d upstream calls: waiting must spend none", attempts, len(calls))
		}
		// 4 failures open the breaker; then one probe per second or so.
		if limit := 4 + int(outage/time.Second)*2; duringOutage > limit {
			t.Errorf("upstream saw %d calls during the outage, want at most %d (the opening failures and the probes)", duringOutage, limit)
		}
		if w := s.metric("job_deliveries_total", "outcome=waited"); w == 0 {
			t.Error("no delivery was counted as waiting for the breaker")
		}
		if peak := fakeapi.MaxInWindow(calls, time.Second); peak > rate+burst {
			t.Errorf("upstream saw %d calls in one second, the limit is %d/s with burst %d", peak, rate, burst)
		}
		t.Logf("%d jobs, %s outage: %d calls during it, %d in all, %d attempts; busiest second %d calls (limit %d+%d)",
			len(locations), outage, duringOutage, len(calls), attempts, fakeapi.MaxInWindow(calls, time.Second), rate, burst)
	})
}

// Acceptance 4 and 6: a deferred job goes queued -> succeeded, its
// response is kept as the upstream sent it, and its callback arrives
// signed, retried after the app's endpoint first answers 500. A callback
// on a host not configured is refused at enqueue.
func TestDeferredResponseAndSignedCallback(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	forEachStore(t, func(t *testing.T, store string) {
		type received struct {
			header http.Header
			body   []byte
		}
		var mu sync.Mutex
		var got []received
		hits := 0
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			hits++
			if hits == 1 {
				w.WriteHeader(500) // the app's endpoint fails once
				return
			}
			got = append(got, received{r.Header.Clone(), body})
		}))
		defer app.Close()
		host := strings.TrimPrefix(app.URL, "http://")
		s := newAsyncStack(t, store, "deferred", fmt.Sprintf("base_delay: 50ms, max_delay: 100ms, callbacks: {allowed_hosts: [%q], secret: %s}", host, secret), "")
		s.fake.Set(fakeapi.Behavior{Status: 201, Body: `{"charge":"ch_{n}"}`, Headers: map[string]string{"X-Charge-Id": "ch_1"},
			LatencyMin: fakeapi.Duration(300 * time.Millisecond), LatencyMax: fakeapi.Duration(300 * time.Millisecond)})

		refused := s.post("/api/v1/charges", `{}`, map[string]string{"Seawall-Mode": "deferred", "Seawall-Callback": "http://evil.example/hook"})
		if refused.status != 400 || problemOf(t, refused)["type"] != "urn:seawall:problem:callback-not-allowed" {
			t.Fatalf("callback to an unlisted host: %d %s, want 400 callback-not-allowed", refused.status, refused.body)
		}

		r := s.post("/api/v1/charges", `{"amount":5}`, map[string]string{"Prefer": "respond-async, wait=5", "Seawall-Callback": app.URL + "/hooks/seawall"})
		if r.status != 202 || r.header.Get("Preference-Applied") != "respond-async" || !strings.Contains(r.body, `"state":"queued"`) {
			t.Fatalf("deferred enqueue: %d %v %s", r.status, r.header, r.body)
		}
		loc := r.header.Get("Location")
		states := []string{}
		sawNotFinished := false
		eventually(t, 30*time.Second, "job succeeded", func() bool {
			st := s.job(t, loc).State
			if len(states) == 0 || states[len(states)-1] != st {
				states = append(states, st)
			}
			if st != "succeeded" && !sawNotFinished {
				if rr := s.get(loc + "/response"); rr.status == 409 {
					sawNotFinished = true
				}
			}
			return st == "succeeded"
		})
		order := map[string]int{"queued": 0, "running": 1, "succeeded": 2}
		for k := 1; k < len(states); k++ {
			if order[states[k]] <= order[states[k-1]] {
				t.Errorf("states went %v", states)
			}
		}
		if !sawNotFinished {
			t.Error("the response was never reported not finished (409) before the job ended")
		}
		resp := s.get(loc + "/response")
		if resp.status != 201 || resp.body != `{"charge":"ch_1"}` || resp.header.Get("X-Charge-Id") != "ch_1" || resp.header.Get("Seawall-Job-State") != "succeeded" {
			t.Errorf("/response = %d %v %s; want the upstream's 201, header and body", resp.status, resp.header, resp.body)
		}

		eventually(t, 30*time.Second, "callback", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 })
		time.Sleep(300 * time.Millisecond) // room for a wrong second callback
		mu.Lock()
		defer mu.Unlock()
		if hits != 2 || len(got) != 1 {
			t.Fatalf("the callback endpoint was hit %d times with %d accepted; want a 500 then one success", hits, len(got))
		}
		key, _ := webhook.Key(secret)
		if err := webhook.Verify(key, got[0].header, got[0].body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("callback signature: %v", err)
		}
		var p proxy.CallbackPayload
		if err := json.Unmarshal(got[0].body, &p); err != nil {
			t.Fatal(err)
		}
		pid := r.header.Get("Seawall-Job-Id")
		id, _ := strconv.ParseInt(strings.Split(pid, "-")[0], 10, 64)
		if p.Type != "job.succeeded" || p.Data.ID != id || p.Data.PublicID != pid || got[0].header.Get("Seawall-Job-Id") != pid || p.Data.Response == nil || p.Data.Response.Status != 201 ||
			p.Data.Response.Body != `{"charge":"ch_1"}` || got[0].header.Get("webhook-id") != fmt.Sprintf("job_%d_succeeded", id) {
			t.Errorf("callback payload %s, webhook-id %s", got[0].body, got[0].header.Get("webhook-id"))
		}
		if c := s.fake.Calls(); len(c) != 1 || c[0].Header.Get("Seawall-Callback") != "" || c[0].Header.Get("Prefer") != "" {
			t.Errorf("upstream got %d calls; control headers must not reach it: %v", len(c), c[0].Header)
		}
	})
}

// Hardening, row 17: when the job store fails, the app gets 503
// queue-unavailable with a hint and Retry-After, and nothing of the
// store's own error (which can name its database, host and user); the
// operator's log has it.
func TestQueueUnavailableTellsTheAppNothingOfTheStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		s := newAsyncStack(t, store, "async", "", "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.jobs.Stop(ctx); err != nil { // closes the database under the proxy
			t.Fatal(err)
		}
		for _, r := range []result{s.post("/api/v1/events", `{"e":1}`, nil), s.get("/_seawall/jobs/1-00112233445566778899aabbccddeeff")} {
			p := problemOf(t, r)
			if r.status != 503 || p["type"] != "urn:seawall:problem:queue-unavailable" || r.header.Get("Retry-After") == "" {
				t.Errorf("%d %v, Retry-After %q; want 503 queue-unavailable with Retry-After", r.status, p["type"], r.header.Get("Retry-After"))
			}
			if d := p["detail"].(string); d != "job store unavailable: the request was not accepted" {
				t.Errorf("detail %q tells the app more than that the store is unavailable", d)
			}
		}
		if !strings.Contains(s.logs.String(), `"msg":"job store unavailable"`) || !strings.Contains(s.logs.String(), `"error":"`) {
			t.Errorf("the log does not say why the store failed:\n%s", s.logs.String())
		}
	})
}

// Hardening, row 11: the app's forwarding headers never reach the
// upstream; what it is told instead is configured (forwarded: none,
// x-forwarded or forwarded) and taken from the connection Seawall saw, on
// the sync, cached and async paths alike.
func TestForwardingHeadersAsConfigured(t *testing.T) {
	spoofed := map[string]string{
		"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example", "Forwarded": "for=203.0.113.9",
		"X-Real-IP": "203.0.113.9", "X-Client-IP": "203.0.113.9", "True-Client-IP": "203.0.113.9",
	}
	for _, tc := range []struct {
		style string
		want  map[string]string // header -> what the upstream must see ("" = absent)
	}{
		{"none", map[string]string{"X-Forwarded-For": "", "Forwarded": "", "X-Real-Ip": ""}},
		{"x-forwarded", map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "Forwarded": "", "X-Real-Ip": ""}},
		{"forwarded", map[string]string{"Forwarded": `for=127.0.0.1;proto=http;host="HOST"`, "X-Forwarded-For": "", "X-Real-Ip": ""}},
	} {
		t.Run(tc.style, func(t *testing.T) {
			s := newAsyncStack(t, filepath.Join(t.TempDir(), "jobs.db"), "sync", "", fmt.Sprintf(`    forwarded: %s
    cache: {ttl: 1m}
    routes:
      - {match: "POST /v1/events", mode: async}
      - {match: "GET /v1/cached", mode: cached}
`, tc.style))
			host := strings.TrimPrefix(s.sw.URL, "http://")
			do := func(method, path string) {
				req, _ := http.NewRequest(method, s.sw.URL+path, strings.NewReader("{}"))
				for k, v := range spoofed {
					req.Header.Set(k, v)
				}
				if r := s.do(req); r.status >= 300 {
					t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
				}
			}
			do("GET", "/api/v1/sync")
			do("GET", "/api/v1/cached")
			do("POST", "/api/v1/events")
			eventually(t, 10*time.Second, "the async job delivered", func() bool { return s.fake.Count() >= 3 })
			for _, c := range s.fake.Calls() {
				for name, want := range tc.want {
					want = strings.ReplaceAll(want, "HOST", host)
					if got := strings.Join(c.Header.Values(name), ","); got != want {
						t.Errorf("%s %s: upstream saw %s %q, want %q", c.Method, c.Path, name, got, want)
					}
				}
				for _, name := range []string{"X-Client-Ip", "True-Client-Ip", "X-Forwarded-Host"} {
					if v := c.Header.Get(name); strings.Contains(v, "evil") || strings.Contains(v, "203.0.113.9") {
						t.Errorf("%s %s: the app's %s %q reached the upstream", c.Method, c.Path, name, v)
					}
				}
			}
		})
	}
}

// Hardening, row 9: an Idempotency-Key is scoped to the upstream, the
// method and the path: the same key on another path is another job, not
// the first one's answer (which silently dropped the second request). The
// same key for the same method and path with another body or query is
// 422, as the IETF draft says; with the same request it is the same job.
func TestIdempotencyKeyScopeAndFingerprint(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, store string) {
		s := newAsyncStack(t, store, "async", "", "")
		key := map[string]string{"Idempotency-Key": "k-1"}
		first := s.post("/api/v1/orders", `{"sku":7}`, key)
		other := s.post("/api/v1/events", `{"e":1}`, key)
		if first.status != 202 || other.status != 202 || first.header.Get("Seawall-Job-Id") == other.header.Get("Seawall-Job-Id") {
			t.Fatalf("same key on two paths: %d job %s, %d job %s; want two jobs", first.status, first.header.Get("Seawall-Job-Id"), other.status, other.header.Get("Seawall-Job-Id"))
		}
		again := s.post("/api/v1/orders", `{"sku":7}`, key)
		if again.status != 202 || again.header.Get("Seawall-Job-Id") != first.header.Get("Seawall-Job-Id") {
			t.Errorf("the same request again: %d job %s, want 202 and job %s", again.status, again.header.Get("Seawall-Job-Id"), first.header.Get("Seawall-Job-Id"))
		}
		for _, path := range []string{"/api/v1/orders", "/api/v1/orders?coupon=1"} {
			body := `{"sku":8}`
			if strings.Contains(path, "?") {
				body = `{"sku":7}`
			}
			r := s.post(path, body, key)
			if p := problemOf(t, r); r.status != 422 || p["type"] != "urn:seawall:problem:idempotency-key-reused" {
				t.Errorf("same key, %s %s: %d %v, want 422 idempotency-key-reused", path, body, r.status, p["type"])
			}
		}
		eventually(t, 10*time.Second, "both jobs delivered", func() bool { return s.fake.Count() >= 2 })
		time.Sleep(200 * time.Millisecond)
		if n := s.fake.Count(); n != 2 {
			t.Errorf("the upstream got %d deliveries, want 2 (orders and events)", n)
		}
	})
}

// Trust, acceptance 2: two installations (two fresh stores, whose
// sequences both start at 1) each deliver a key-less job to one vendor.
// The keys differ, neither is the store's id nor the public id's token,
// and each is random (128 bits, in hex). Before, both were
// "seawall-job-1", and a vendor keeping keys for a day answered the
// second installation's job with the first one's.
func TestDeliveryKeysNeverCollideAcrossInstallations(t *testing.T) {
	vendor := fakeapi.New(fakeapi.Behavior{})
	up := httptest.NewServer(vendor)
	defer up.Close()
	var keys []string
	for i := range 2 {
		s := newAsyncStackURL(t, filepath.Join(t.TempDir(), "jobs.db"), up.URL, "async", "base_delay: 20ms", "")
		r := s.post("/api/v1/notify", `{"same":"body"}`, nil)
		if r.status != 202 {
			t.Fatalf("installation %d: %d %s", i+1, r.status, r.body)
		}
		s.waitJob(t, r.header.Get("Location"), "succeeded")
		calls := vendor.Calls()
		key := calls[len(calls)-1].Header.Get("Idempotency-Key")
		id, token, _ := strings.Cut(r.header.Get("Seawall-Job-Id"), "-")
		hex, ok := strings.CutPrefix(key, "seawall-")
		if !ok || len(hex) != 32 || strings.Trim(hex, "0123456789abcdef") != "" || hex == token || strings.HasSuffix(key, "-"+id) {
			t.Errorf("installation %d (job %s) delivered with key %q, want seawall- and 128 random bits, not its id or token", i+1, id, key)
		}
		keys = append(keys, key)
	}
	if keys[0] == keys[1] {
		t.Errorf("two installations sent the vendor the same key %q for different jobs", keys[0])
	}
}

// Trust, acceptance 1: an Idempotency-Key is the caller's own. Every way a
// request names its caller (the cache's: Authorization in each scheme,
// Cookie, identity_headers, the rate limit's tenant key), sending the same
// key, path and body, gets a job of its own, and the vendor receives each
// request with that caller's credentials. Before, the second caller got
// the first one's job id (the capability to read its answer) and its own
// request was never sent.
func TestIdempotencyKeyIsTheCallersOwn(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, store string) {
		s := newAsyncStack(t, store, "deferred", "base_delay: 20ms, max_delay: 100ms",
			"    rate_limit: {key_header: X-Tenant}\n    cache: {identity_headers: [X-Api-Key]}\n")
		jobOf := map[string]string{}
		for _, c := range testcallers.Forms {
			h := map[string]string{"Idempotency-Key": "charge-1"}
			if c.Header != nil {
				h[c.Header[0]] = c.Header[1]
			}
			r := s.post("/api/v1/charges", `{"amount":100}`, h)
			id := r.header.Get("Seawall-Job-Id")
			if r.status != 202 || strings.Contains(r.body, `"existing":true`) {
				t.Fatalf("%s: %d %s, want 202 and a new job", c.Name, r.status, r.body)
			}
			for other, otherID := range jobOf {
				if otherID == id {
					t.Errorf("%s got job %s, the job of %s", c.Name, id, other)
				}
			}
			jobOf[c.Name] = id
			// The same caller again is its own job again.
			if again := s.post("/api/v1/charges", `{"amount":100}`, h); again.header.Get("Seawall-Job-Id") != id {
				t.Errorf("%s again: job %s, want its own %s", c.Name, again.header.Get("Seawall-Job-Id"), id)
			}
		}
		eventually(t, 20*time.Second, "every caller's request delivered", func() bool { return s.fake.Count() >= len(testcallers.Forms) })
		time.Sleep(200 * time.Millisecond) // room for a wrong extra delivery to show
		calls := s.fake.Calls()
		if len(calls) != len(testcallers.Forms) {
			t.Fatalf("the vendor got %d requests, want %d: one per caller", len(calls), len(testcallers.Forms))
		}
		for _, c := range testcallers.Forms {
			n := 0
			for _, call := range calls {
				if c.Header == nil && call.Header.Get("Authorization")+call.Header.Get("Cookie")+call.Header.Get("X-Api-Key")+call.Header.Get("X-Tenant") == "" ||
					c.Header != nil && call.Header.Get(c.Header[0]) == c.Header[1] {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: the vendor received %d requests with its credentials, want 1", c.Name, n)
			}
		}
	})
}

// Hardening, row 6: with the job store unreachable, /metrics still serves
// every other metric, with seawall_store_up 0 and the store's gauges left
// out, instead of failing as a whole.
func TestMetricsWithTheStoreDown(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		s := newAsyncStack(t, store, "async", "", "")
		s.get("/api/v1/x")
		if got := s.metric("store_up"); got != 1 {
			t.Fatalf("seawall_store_up = %v with the store up, want 1", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.jobs.Stop(ctx); err != nil { // closes the database
			t.Fatal(err)
		}
		families, err := s.m.Registry.Gather()
		if err != nil {
			t.Fatalf("gathering with the store down: %v", err)
		}
		names := map[string]bool{}
		for _, f := range families {
			names[f.GetName()] = true
		}
		if !names["seawall_requests_total"] || names["seawall_jobs"] || s.metric("store_up") != 0 {
			t.Errorf("with the store down: requests_total %v, jobs %v, store_up %v; want the first, not the second, and 0", names["seawall_requests_total"], names["seawall_jobs"], s.metric("store_up"))
		}
	})
}

// Hardening, row 12 (in part): an async request's Seawall-Request-Id and
// trace context reach the vendor on every delivery, and each delivery
// attempt is one log line with the job, the attempt and the outcome.
func TestDeliveriesCarryTheRequestIDAndAreLogged(t *testing.T) {
	s := newAsyncStack(t, filepath.Join(t.TempDir(), "jobs.db"), "async", "base_delay: 10ms, max_delay: 20ms", "")
	s.fake.Set(fakeapi.Behavior{Status: 503}) // the first delivery fails
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := s.post("/api/v1/events", `{"e":1}`, map[string]string{"Seawall-Request-Id": "app-rid-42", "Traceparent": traceparent})
	if r.status != 202 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	eventually(t, 5*time.Second, "a first delivery", func() bool { return s.fake.Count() >= 1 })
	s.fake.Set(fakeapi.Behavior{})
	s.waitJob(t, r.header.Get("Location"), "succeeded")
	for i, c := range s.fake.Calls() {
		if got := c.Header.Get("Seawall-Request-Id"); got != "app-rid-42" {
			t.Errorf("delivery %d carried request id %q, want the app's app-rid-42", i+1, got)
		}
		if got := c.Header.Get("Traceparent"); got != traceparent {
			t.Errorf("delivery %d carried traceparent %q, want the app's", i+1, got)
		}
	}
	logs := s.logs.String()
	for _, want := range []string{`"msg":"delivery"`, `"outcome":"failed"`, `"outcome":"succeeded"`, `"request_id":"app-rid-42"`, `"attempt":2`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
}

// Hardening, row 3: a job's public id cannot be guessed (128 random bits
// beside the store's id), an id wrong in any part is answered as unknown,
// and the public view shows state and times, never the request's query,
// headers, idempotency key or callback.
func TestJobIdsAreUnguessableAndThePublicViewIsPrivate(t *testing.T) {
	s := newAsyncStack(t, filepath.Join(t.TempDir(), "jobs.db"), "deferred",
		`callbacks: {allowed_hosts: ["127.0.0.1:1"], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}`, "")
	s.fake.Set(fakeapi.Behavior{Body: `{"card":"4242-secret"}`})
	first := s.post("/api/v1/charges?token=query-secret", `{"amount":1}`, map[string]string{
		"Idempotency-Key": "key-secret", "Seawall-Callback": "http://127.0.0.1:1/hook-secret", "X-Tenant": "header-secret"})
	second := s.post("/api/v1/charges", `{"amount":2}`, nil)
	ids := []string{first.header.Get("Seawall-Job-Id"), second.header.Get("Seawall-Job-Id")}
	var tokens []string
	for i, id := range ids {
		num, token, ok := strings.Cut(id, "-")
		if !ok || len(token) < 32 || strings.Trim(token, "0123456789abcdef") != "" {
			t.Fatalf("job %d has public id %q: want <id>-<at least 128 bits in hex>", i+1, id)
		}
		if _, err := strconv.ParseInt(num, 10, 64); err != nil {
			t.Fatalf("public id %q: %v", id, err)
		}
		tokens = append(tokens, token)
	}
	if tokens[0] == tokens[1] {
		t.Fatal("two jobs got the same token")
	}
	s.waitJob(t, "/_seawall/jobs/"+ids[0], "succeeded")

	num0, _, _ := strings.Cut(ids[0], "-")
	num1, _, _ := strings.Cut(ids[1], "-")
	for _, guess := range []string{
		num0,                                 // the store's id alone, as before
		num0 + "-" + strings.Repeat("0", 32), // a wrong token
		num1 + "-" + tokens[0],               // another job's token
		num0 + "-" + tokens[0][:31],          // a token cut short
		num0 + "-" + strings.ToUpper(tokens[0]),
	} {
		for _, suffix := range []string{"", "/response"} {
			r := s.get("/_seawall/jobs/" + guess + suffix)
			if r.status != 404 || problemOf(t, r)["type"] != "urn:seawall:problem:unknown-job" {
				t.Errorf("GET /_seawall/jobs/%s%s = %d %s, want 404 unknown-job", guess, suffix, r.status, r.body)
			}
		}
	}

	view := s.get("/_seawall/jobs/" + ids[0])
	for _, secret := range []string{"query-secret", "key-secret", "hook-secret", "header-secret", "amount"} {
		if strings.Contains(view.body, secret) {
			t.Errorf("the public view shows %q: %s", secret, view.body)
		}
	}
	if !strings.Contains(view.body, `"path":"/v1/charges"`) || !strings.Contains(view.body, `"state":"succeeded"`) {
		t.Errorf("the public view lacks the state or the path: %s", view.body)
	}
	// The holder of the id still gets the kept answer.
	if r := s.get("/_seawall/jobs/" + ids[0] + "/response"); r.status != 200 || r.body != `{"card":"4242-secret"}` || r.header.Get("Seawall-Job-Id") != ids[0] {
		t.Errorf("/response with the right id = %d %s", r.status, r.body)
	}
}

// Hardening, row 16: with the PostgreSQL job store hung (its connections
// open, nothing answered, as under SIGSTOP), async requests and job reads
// get 503 queue-unavailable with Retry-After by jobs.enqueue_timeout, each
// on its own deadline however many are stuck ahead of it; /readyz says
// the store is down; and once the store answers again, what was accepted
// is delivered and new requests are accepted.
func TestHungStoreAnswers503ByTheEnqueueDeadline(t *testing.T) {
	t.Parallel()
	pg, err := url.Parse(testdb.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	freezer := vendortest.NewFreezer(t, pg.Host)
	pg.Host = freezer.Addr
	const timeout = time.Second
	s := newAsyncStack(t, pg.String(), "async", "enqueue_timeout: 1s, base_delay: 20ms, max_delay: 100ms", "")
	ops := httptest.NewServer(admin.Handler(admin.Parts{Upstreams: s.ups, Jobs: s.jobs, Token: "ops-token-0123456789"}))
	defer ops.Close()
	ready := func() int {
		resp, err := http.Get(ops.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != 200 {
		t.Fatalf("/readyz with the store up = %d", got)
	}
	before := s.post("/api/v1/events", `{"e":0}`, nil)
	if before.status != 202 {
		t.Fatalf("before the freeze: %d %s", before.status, before.body)
	}
	s.waitJob(t, before.header.Get("Location"), "succeeded")

	freezer.Freeze()
	// Ten at once, so that most wait behind a stuck transaction, then
	// one read. Each must be answered near its own deadline, not after
	// the ones ahead of it (before: 30 s each, and more for each retry).
	const n = 10
	took := make([]time.Duration, n+1)
	results := make([]result, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			results[i] = s.post("/api/v1/events", fmt.Sprintf(`{"e":%d}`, i+1), nil)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	start := time.Now()
	results[n] = s.get(before.header.Get("Location"))
	took[n] = time.Since(start)
	for i, r := range results {
		p := problemOf(t, r)
		if r.status != 503 || p["type"] != "urn:seawall:problem:queue-unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("request %d with the store hung: %d %v, Retry-After %q; want 503 queue-unavailable with Retry-After", i, r.status, p["type"], r.header.Get("Retry-After"))
		}
		// A bound on behaviour, ten times the deadline: not a timing.
		if took[i] > 10*timeout {
			t.Errorf("request %d answered after %s with a %s enqueue deadline", i, took[i], timeout)
		}
	}
	if d := problemOf(t, results[0])["detail"].(string); !strings.Contains(d, "same Idempotency-Key") {
		t.Errorf("a timed-out enqueue should tell the app how to resend safely: %q", d)
	}
	if got := ready(); got != 503 {
		t.Errorf("/readyz with the store hung = %d, want 503", got)
	}
	t.Logf("with the store hung: answered in %v", took)
	// The operator's job list (as `seawall jobs list` reads it) answers by
	// the store's deadline too, not after the database's own (~50 s).
	for _, path := range []string{"/admin/jobs", "/admin/jobs?state=dead"} {
		req, _ := http.NewRequest(http.MethodGet, ops.URL+path, nil)
		req.Header.Set("Authorization", "Bearer ops-token-0123456789")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != 503 || took > 10*timeout {
			t.Errorf("GET %s with the store hung: %d after %s, want 503 by the store's deadline (%s)", path, resp.StatusCode, took.Round(time.Millisecond), timeout)
		}
	}

	freezer.Thaw()
	var after result
	eventually(t, 30*time.Second, "an async request accepted after the thaw", func() bool {
		after = s.post("/api/v1/events", `{"e":"after"}`, nil)
		return after.status == 202
	})
	s.waitJob(t, after.header.Get("Location"), "succeeded")
	if got := ready(); got != 200 {
		t.Errorf("/readyz after the thaw = %d", got)
	}
}

// An app that goes away while its request waits for the store is logged
// as a client that closed (499), not as a job store failure: the store
// was fine, and an operator paged on "job store unavailable" would look
// in the wrong place.
func TestAsyncClientGoneIsNotAStoreFailure(t *testing.T) {
	s := newAsyncStack(t, filepath.Join(t.TempDir(), "jobs.db"), "async", "", "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/events", strings.NewReader(`{"e":1}`))
	func() {
		defer func() { _ = recover() }() // a 499 aborts the handler, as net/http expects
		s.proxy.ServeHTTP(httptest.NewRecorder(), req)
	}()
	logs := s.logs.String()
	if strings.Contains(logs, "job store unavailable") {
		t.Errorf("a client gone was logged as a store failure:\n%s", logs)
	}
	if !strings.Contains(logs, `"status":499`) {
		t.Errorf("the request was not logged as closed by its client (499):\n%s", logs)
	}
}

// Trust, item 5: the connection to PostgreSQL breaks after an enqueue's
// COMMIT was sent, and before its answer came back: the job was accepted,
// though Seawall cannot know it. The app is told so — 503, "may have been
// accepted", resend with the same Idempotency-Key — and resending finds
// the job, delivered once. Before, it was told "not accepted", and the
// job was delivered after its 503.
func TestLostCommitAnswerSaysMayHaveBeenAccepted(t *testing.T) {
	t.Parallel()
	pg, err := url.Parse(testdb.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	relay := vendortest.NewFreezer(t, pg.Host)
	pg.Host = relay.Addr
	s := newAsyncStack(t, pg.String(), "async", "base_delay: 20ms, max_delay: 100ms", "")
	key := map[string]string{"Idempotency-Key": "order-77"}
	// River's insert, then the COMMIT query message ("commit" and its NUL).
	relay.CutAfter("jobinsert", "commit\x00")
	r := s.post("/api/v1/charges", `{"amount":5}`, key)
	p := problemOf(t, r)
	if r.status != 503 || p["type"] != "urn:seawall:problem:queue-unavailable" {
		t.Fatalf("the enqueue whose COMMIT answer was lost: %d %s, want 503 queue-unavailable", r.status, r.body)
	}
	if d, _ := p["detail"].(string); !strings.Contains(d, "may have been accepted") || !strings.Contains(d, "same Idempotency-Key") {
		t.Errorf("detail %q, want it to say the request may have been accepted and to resend it with the same Idempotency-Key", d)
	}
	again := s.post("/api/v1/charges", `{"amount":5}`, key)
	if again.status != 202 || !strings.Contains(again.body, `"existing":true`) {
		t.Fatalf("resent with the same key: %d %s, want 202 with the job the lost COMMIT had accepted", again.status, again.body)
	}
	s.waitJob(t, again.header.Get("Location"), "succeeded")
	time.Sleep(300 * time.Millisecond) // room for a wrong second delivery
	if n := s.fake.Count(); n != 1 {
		t.Errorf("the vendor got %d deliveries, want 1", n)
	}
}

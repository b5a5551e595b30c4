package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/server"
)

// newAsyncStack is a stack whose "api" upstream is async, with an embedded
// job store of its own, delivering.
func newAsyncStack(t *testing.T, jobsYAML, extra string) *stack {
	t.Helper()
	db := filepath.Join(t.TempDir(), "jobs.db")
	s := newStack(t, "jobs: {store: "+db+", "+jobsYAML+"}", "    mode: async\n"+extra)
	store, err := server.OpenJobs(context.Background(), s.cfg, s.proxy)
	if err != nil {
		t.Fatal(err)
	}
	s.proxy.SetJobs(store)
	if err := store.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = store.Stop(ctx)
	})
	return s
}

type jobView struct {
	ID      int64  `json:"id"`
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
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
	eventually(t, 20*time.Second, location+" "+state, func() bool { j = s.job(t, location); return j.State == state })
	return j
}

func TestAsyncAcceptsThenDelivers(t *testing.T) {
	s := newAsyncStack(t, "base_delay: 20ms, max_delay: 100ms", "")
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
		c.Header.Get("Idempotency-Key") != fmt.Sprintf("seawall-job-%d", j.ID) {
		t.Errorf("delivered %s %s %q key %q", c.Method, c.Path, c.Body, c.Header.Get("Idempotency-Key"))
	}
	if r := s.get("/_seawall/jobs/987654"); r.status != 404 || problemOf(t, r)["type"] != "urn:seawall:problem:unknown-job" {
		t.Errorf("unknown job: %d %s", r.status, r.body)
	}
}

func TestAsyncIdempotencyKeyGivesOneJobOneDelivery(t *testing.T) {
	s := newAsyncStack(t, "base_delay: 20ms, max_delay: 100ms", "")
	key := map[string]string{"Idempotency-Key": "order-77"}
	a, b := s.post("/api/v1/charge", "{}", key), s.post("/api/v1/charge", "{}", key)
	if a.header.Get("Seawall-Job-Id") != b.header.Get("Seawall-Job-Id") || !strings.Contains(b.body, `"existing":true`) {
		t.Fatalf("two enqueues with one key: %s and %s", a.body, b.body)
	}
	s.waitJob(t, a.header.Get("Location"), "succeeded")
	time.Sleep(300 * time.Millisecond) // room for a wrong second delivery to show
	if calls := s.fake.Calls(); len(calls) != 1 || calls[0].Header.Get("Idempotency-Key") != "order-77" {
		t.Errorf("upstream got %d deliveries, want 1 carrying the app's key", len(calls))
	}
}

// While the breaker is open, jobs wait without spending attempts: only
// real upstream calls (the first failures and the half-open probes) count.
// Retried every 50ms, 10 attempts would be spent long before a 3s outage ends.
func TestAsyncWaitsOutAnOutage(t *testing.T) {
	s := newAsyncStack(t, "max_attempts: 10, base_delay: 50ms, max_delay: 50ms",
		"    breaker: {min_calls: 2, failure_rate: 50, open_duration: 500ms, half_open_calls: 1}\n")
	s.fake.Set(fakeapi.Behavior{Down: true})
	var locations []string
	for i := 0; i < 5; i++ {
		locations = append(locations, s.post("/api/v1/event", fmt.Sprintf(`{"i":%d}`, i), nil).header.Get("Location"))
	}
	time.Sleep(3 * time.Second)
	s.fake.Set(fakeapi.Behavior{})
	attempts := 0
	for _, l := range locations {
		attempts += s.waitJob(t, l, "succeeded").Attempt
	}
	calls := s.fake.Count()
	if attempts != calls {
		t.Errorf("jobs spent %d attempts for %d upstream calls: waiting must spend none", attempts, calls)
	}
	// Two failures open the breaker; then about one probe per 500ms; then 5 successes.
	if calls > 2+8+5 {
		t.Errorf("upstream saw %d calls across a 3s outage, want only the first failures and the probes", calls)
	}
	t.Logf("5 jobs across a 3s outage: %d upstream calls, %d attempts", calls, attempts)
}

package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/proxy"
)

// A callback goes out on Seawall's own HTTP/1.1 client, as a call to an
// upstream does (ADR 0004): HTTP/1.1, with no Accept-Encoding Seawall did
// not choose (net/http's Transport adds gzip to every request), and a
// redirect is an answer, not followed.
func TestCallbackIsSentOnSeawallsClient(t *testing.T) {
	type received struct {
		path, proto string
		header      http.Header
	}
	var mu sync.Mutex
	var got []received
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, received{r.URL.Path, r.Proto, r.Header.Clone()})
		mu.Unlock()
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/hook", http.StatusFound)
		}
	}))
	defer app.Close()
	cb, err := proxy.NewCallbacks(config.Callbacks{
		AllowedHosts: []string{strings.TrimPrefix(app.URL, "http://")},
		Secret:       config.NewSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
		Timeout:      config.Duration(5 * time.Second),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := func(path string) jobs.Job {
		return jobs.Job{ID: 7, State: jobs.Succeeded, Delivery: jobs.Delivery{Upstream: "api", Callback: app.URL + path, Token: "t0k3n"}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cb.Notify(ctx, job("/hook")); err != nil {
		t.Fatal(err)
	}
	if err := cb.Notify(ctx, job("/moved")); err == nil || !strings.Contains(err.Error(), "answered 302") {
		t.Errorf("a callback answered with a redirect: %v, want it failed as answered 302", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].path != "/hook" || got[1].path != "/moved" {
		t.Fatalf("the app got %+v, want /hook then /moved and no redirect followed", got)
	}
	for _, r := range got {
		if r.proto != "HTTP/1.1" || r.header.Get("Accept-Encoding") != "" || r.header.Get("User-Agent") != "Seawall" ||
			r.header.Get("Webhook-Signature") == "" {
			t.Errorf("%s came as %s with %v; want HTTP/1.1, signed, from Seawall, with no Accept-Encoding", r.path, r.proto, r.header)
		}
	}
}

// Trust, item 5: a callback's host is checked against the allow-list in
// force when the callback is sent. A job accepted while its callback's
// host was allowed, whose host a reload then removed, sends no callback.
// Before, the allow-list read when the store opened was the one checked.
func TestCallbackHostIsCheckedWhenSent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hits := 0
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer app.Close()
	host := strings.TrimPrefix(app.URL, "http://")
	jobsYAML := fmt.Sprintf("base_delay: 50ms, max_delay: 100ms, callbacks: {allowed_hosts: [%q, other.example], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, max_attempts: 2}", host)
	s := newAsyncStack(t, filepath.Join(t.TempDir(), "jobs.db"), "deferred", jobsYAML, "")
	s.fake.Set(fakeapi.Behavior{LatencyMin: fakeapi.Duration(500 * time.Millisecond), LatencyMax: fakeapi.Duration(500 * time.Millisecond)})
	r := s.post("/api/v1/charges", `{}`, map[string]string{"Seawall-Callback": app.URL + "/hook"})
	if r.status != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", r.status, r.body)
	}
	// While the delivery is under way, a reload drops the app's host.
	cfg, err := config.Parse("reload.yaml", []byte(strings.Replace(s.doc, fmt.Sprintf("%q, ", host), "", 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s.proxy.Apply(cfg)
	if s.ups.CallbackAllowed(host) {
		t.Fatal("the reload did not drop the host: the test would prove nothing")
	}
	s.waitJob(t, r.header.Get("Location"), "succeeded")
	time.Sleep(time.Second) // room for the callback and its retry
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the app's endpoint got %d callbacks after a reload removed its host, want 0", hits)
	}
}

package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
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
	})
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

package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
)

// startDoc serves a Seawall with the config document until the test ends.
func startDoc(t *testing.T, doc string) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, lns, err := Listen(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lns) }()
	t.Cleanup(cancel)
	return s, cancel, done
}

func start(t *testing.T, upstream string) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	return startDoc(t, `listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: s3cret}
shutdown_grace: 5s
upstreams:
  api: {url: `+upstream+`}
`)
}

func TestAdminPurgesCache(t *testing.T) {
	fake := fakeapi.New(fakeapi.Behavior{Headers: map[string]string{"Cache-Control": "max-age=600"}})
	up := httptest.NewServer(fake)
	defer up.Close()
	s, _, _ := startDoc(t, `listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: s3cret}
upstreams:
  api: {url: `+up.URL+`, mode: cached, cache: {}}
`)
	app, admin := "http://"+s.Addrs()[0].String(), "http://"+s.Addrs()[1].String()
	for _, path := range []string{"/api/v1/items/1", "/api/v1/items/1", "/api/v1/other"} {
		status(t, app+path, "")
	}
	if n := fake.Count(); n != 2 {
		t.Fatalf("upstream calls = %d, want 2 (one hit)", n)
	}
	purge := func(q string) string {
		req, _ := http.NewRequest(http.MethodPost, admin+"/admin/cache/purge?"+q, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	if got := purge("upstream=api&path=/v1/items"); got != `200 {"purged":1}` {
		t.Errorf("purge = %s", got)
	}
	if got := purge("upstream=nope"); !strings.HasPrefix(got, "400") {
		t.Errorf("purge of an unknown upstream = %s, want 400", got)
	}
	status(t, app+"/api/v1/items/1", "")
	status(t, app+"/api/v1/other", "")
	if n := fake.Count(); n != 3 {
		t.Errorf("upstream calls = %d, want 3: the purged key refetched, the other still cached", n)
	}
}

func status(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestAdminRequiresToken(t *testing.T) {
	up := httptest.NewServer(fakeapi.New(fakeapi.Behavior{}))
	defer up.Close()
	s, _, _ := start(t, up.URL)
	admin := "http://" + s.Addrs()[1].String()
	if got := status(t, admin+"/healthz", ""); got != 200 {
		t.Errorf("/healthz without token = %d, want 200", got)
	}
	for _, path := range []string{"/metrics", "/admin/upstreams", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		if got := status(t, admin+path, ""); got != 401 {
			t.Errorf("%s without token = %d, want 401", path, got)
		}
		if got := status(t, admin+path, "wrong"); got != 401 {
			t.Errorf("%s with a wrong token = %d, want 401", path, got)
		}
		if got := status(t, admin+path, "s3cret"); got != 200 {
			t.Errorf("%s with the token = %d, want 200", path, got)
		}
	}
}

// Graceful shutdown: a call in flight when the stop comes still completes.
func TestShutdownFinishesInFlightCalls(t *testing.T) {
	fake := fakeapi.New(fakeapi.Behavior{LatencyMin: fakeapi.Duration(500 * time.Millisecond), Body: "late but whole"})
	up := httptest.NewServer(fake)
	defer up.Close()
	s, stop, done := start(t, up.URL)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addrs()[0].String() + "/api/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	for deadline := time.Now().Add(5 * time.Second); fake.Count() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the call never reached the upstream: %s", <-got)
		}
	}
	stop()
	if body := <-got; !strings.Contains(body, "late but whole") {
		t.Errorf("in-flight call got %q, want the upstream's answer", body)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + s.Addrs()[0].String() + "/api/x"); err == nil {
		t.Error("still accepting after shutdown")
	}
}

package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
)

// reloadStack is a Seawall started from a config file the test rewrites.
type reloadStack struct {
	t    *testing.T
	s    *Server
	file string
	app  string
}

func startFile(t *testing.T, doc string) *reloadStack {
	t.Helper()
	file := filepath.Join(t.TempDir(), "seawall.yaml")
	if err := os.WriteFile(file, []byte(onTestEngine(doc)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, lns, err := Listen(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.ConfigPath = file
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lns) }()
	t.Cleanup(func() { cancel(); <-done })
	return &reloadStack{t: t, s: s, file: file, app: "http://" + s.Addrs()[0].String()}
}

func (r *reloadStack) reload(doc string) Reloaded {
	r.t.Helper()
	if err := os.WriteFile(r.file, []byte(onTestEngine(doc)), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return r.s.Reload()
}

func (r *reloadStack) post(path string) *http.Response {
	r.t.Helper()
	resp, err := http.Post(r.app+path, "application/json", strings.NewReader(`{}`))
	if err != nil {
		r.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// Config reload: an upstream whose settings did not change keeps its
// state (here a pause its vendor asked for); a changed one is rebuilt; an
// invalid file, or one that moves a listener, is rejected with its
// problems and the running config stays; a removed upstream's jobs stay
// queued, spending no attempt, and one added is delivered to.
func TestReloadKeepsWhatDidNotChange(t *testing.T) {
	paused := fakeapi.New(fakeapi.Behavior{Status: 429, Headers: map[string]string{"Retry-After": "600"}})
	ups := []*httptest.Server{httptest.NewServer(paused), httptest.NewServer(fakeapi.New(fakeapi.Behavior{})), httptest.NewServer(fakeapi.New(fakeapi.Behavior{}))}
	for _, u := range ups {
		defer u.Close()
	}
	store := filepath.Join(t.TempDir(), "jobs.db")
	doc := func(otherRate, third string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: "off"}
jobs: {store: %q}
upstreams:
  api: {url: %s, retry: {max_attempts: 1}}
  other: {url: %s, mode: async, rate_limit: {rate: %s}}
%s`, store, ups[0].URL, ups[1].URL, otherRate, third)
	}
	r := startFile(t, doc("100/s", ""))
	r.post("/api/v1/x") // the vendor asks for a 10-minute pause
	if resp := r.post("/api/v1/x"); resp.Header.Get("Seawall-Source") != "seawall" {
		t.Fatalf("not paused before the reload: %d from %s", resp.StatusCode, resp.Header.Get("Seawall-Source"))
	}
	api, other := r.s.Proxy.Upstream("api"), r.s.Proxy.Upstream("other")

	got := r.reload(doc("200/s", "  third: {url: "+ups[2].URL+", mode: async}\n"))
	if got.Result != ReloadApplied || strings.Join(got.Changed, ",") != "other" || strings.Join(got.Added, ",") != "third" || strings.Join(got.Kept, ",") != "api" {
		t.Fatalf("reload: %+v", got)
	}
	if r.s.Proxy.Upstream("api") != api || r.s.Proxy.Upstream("other") == other {
		t.Error("the unchanged upstream was rebuilt, or the changed one was not")
	}
	if resp := r.post("/api/v1/x"); resp.Header.Get("Seawall-Source") != "seawall" || paused.Count() != 1 {
		t.Errorf("the unchanged upstream lost its pause: %d from %s, vendor calls %d", resp.StatusCode, resp.Header.Get("Seawall-Source"), paused.Count())
	}
	if st := r.s.Proxy.Upstream("other").Limiter.Status(); st.Configured != 200 {
		t.Errorf("the new rate is not in force: %+v", st)
	}
	// The upstream added by the reload is delivered to.
	if resp := r.post("/third/v1/e"); resp.StatusCode != 202 {
		t.Fatalf("async to the added upstream: %d", resp.StatusCode)
	}
	third := ups[2].Config.Handler.(*fakeapi.Server)
	for deadline := time.Now().Add(20 * time.Second); third.Count() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job of the upstream added by the reload was never delivered")
		}
	}

	// Invalid: rejected with the file's line, and nothing changes.
	bad := doc("200/s", "  third: {url: "+ups[2].URL+", mode: async}\n") + "  fourth: {url: http://x, retyr: {}}\n"
	got = r.reload(bad)
	if got.Result != ReloadRejected || len(got.Problems) != 1 || !strings.Contains(got.Problems[0], r.file+":8") || !strings.Contains(got.Problems[0], "retyr") {
		t.Errorf("an invalid file: %+v; want rejected with file:line, the one error its only problem", got)
	}
	// The file's warning (its job store lies outside data_dir) is said
	// apart: it is not why the reload was rejected.
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "warning: ") || !strings.Contains(got.Warnings[0], "outside data_dir") {
		t.Errorf("a rejected reload's warnings %q, want the file's one warning, apart from its problems", got.Warnings)
	}
	if r.s.Proxy.Upstream("fourth") != nil || r.s.Proxy.Upstream("third") == nil {
		t.Error("a rejected reload changed the running config")
	}
	// A listener address may not change while running.
	got = r.reload(strings.Replace(doc("200/s", ""), "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1))
	if got.Result != ReloadRejected || !strings.Contains(strings.Join(got.Problems, "\n"), "listen: changing it needs a restart") {
		t.Errorf("moving the listener: %+v", got)
	}
	if n := testutil.ToFloat64(r.s.reloads.WithLabelValues(ReloadRejected)); n != 2 {
		t.Errorf("seawall_config_reloads_total{result=rejected} = %v, want 2", n)
	}

	// Removed: its jobs stay queued and spend no attempt.
	third.Set(fakeapi.Behavior{Down: true, ErrorStatus: 503})
	resp := r.post("/third/v1/e")
	id := resp.Header.Get("Seawall-Job-Id")
	got = r.reload(doc("200/s", ""))
	if got.Result != ReloadApplied || strings.Join(got.Removed, ",") != "third" {
		t.Fatalf("removing an upstream: %+v", got)
	}
	num, _, _ := strings.Cut(id, "-")
	var jid int64
	_, _ = fmt.Sscan(num, &jid)
	time.Sleep(500 * time.Millisecond) // room for a wrong delivery
	j, err := r.s.jobs.Get(context.Background(), jid)
	if err != nil || j.Finished() {
		t.Errorf("the removed upstream's job: %+v %v; want it still queued", j, err)
	}
	if j.Attempt > 1 {
		t.Errorf("the removed upstream's job spent %d attempts", j.Attempt)
	}
}

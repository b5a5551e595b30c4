package upstream_test

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

	"github.com/seawall/seawall/internal/cache"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/upstream"
)

// set builds the upstreams of a config doc.
func set(t *testing.T, doc string) *upstream.Set {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s := upstream.NewSet(cfg, upstream.Parts{Metrics: upstream.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(s.Close)
	return s
}

// call makes one call through the attempt loop, as the job workers do:
// the runtime alone, no handler.
func call(t *testing.T, u *upstream.Upstream, path string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, u.Target(path, "").String(), http.NoBody)
	c := &upstream.Call{Upstream: u, Route: u.Match(req, path), Target: req.URL, Path: path, RequestID: "t", Client: context.Background()}
	u.PrepareOutbound(req.Header, c.RequestID)
	resp, err := u.Do(req, c)
	if err == nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

// A retry goes to another endpoint than the attempt that failed, each
// endpoint gets its own base path, and the credentials go to every one.
func TestRetryLeavesTheFailedEndpoint(t *testing.T) {
	down, up := fakeapi.New(fakeapi.Behavior{Down: true}), fakeapi.New(fakeapi.Behavior{})
	a, b := httptest.NewServer(down), httptest.NewServer(up)
	defer a.Close()
	defer b.Close()
	s := set(t, fmt.Sprintf("upstreams:\n  api:\n    headers: {X-Key: k}\n    endpoints:\n      - {url: %q}\n      - {url: %q}\n", a.URL+"/a", b.URL+"/b"))
	u := s.Get("api")
	for i := range 40 {
		resp, err := call(t, u, fmt.Sprintf("/r/%d", i))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %v %v, want the retry on b to answer", i, resp, err)
		}
	}
	seen := map[string]int{}
	for _, c := range down.Calls() {
		if !strings.HasPrefix(c.Path, "/a/r/") || c.Header.Get("X-Key") != "k" {
			t.Errorf("endpoint a got %s with X-Key %q", c.Path, c.Header.Get("X-Key"))
		}
		if seen[c.Path]++; seen[c.Path] > 1 {
			t.Errorf("%s was retried on the endpoint that failed it", c.Path)
		}
	}
	for _, c := range up.Calls() {
		if !strings.HasPrefix(c.Path, "/b/r/") || c.Header.Get("X-Key") != "k" {
			t.Errorf("endpoint b got %s with X-Key %q", c.Path, c.Header.Get("X-Key"))
		}
	}
	if len(down.Calls()) == 0 {
		t.Error("endpoint a got no call: the test proved nothing")
	}
}

// Apply keeps an unchanged upstream whole, replaces a changed one keeping
// its shifts, and drops the cached answers of one that now calls other
// endpoints, or is gone.
func TestSetApply(t *testing.T) {
	doc := "zone: a\nupstreams:\n  api:\n    endpoints:\n      - {url: \"http://10.0.0.1\", zone: a}\n      - {url: \"http://10.0.0.2\", zone: b}\n  one:\n    url: http://10.0.0.3\n"
	cfg := func(doc string) *config.Config {
		c, err := config.Parse("t.yaml", []byte(doc), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s := upstream.NewSet(cfg(doc), upstream.Parts{Metrics: upstream.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	cached := func() string { // which upstreams' answers the cache holds, after storing one for any that has none
		var held []string
		for _, name := range []string{"api", "one"} {
			key := upstream.CacheKeyPrefix(name, "/x?|h")
			if _, ok := s.Cache().Get(key); ok {
				held = append(held, name)
			}
			s.Cache().Set(key, &cache.Entry{Status: 200, Header: http.Header{}, Body: []byte("x")}, time.Minute)
		}
		return fmt.Sprint(held)
	}
	cached()
	api := s.Get("api")
	_ = api.Usage.Reserve(context.Background(), "default")
	sh, err := s.AddShift("api", "a", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddShift("one", "", "http://10.0.0.3", 0); err == nil {
		t.Error("a shift of a one-endpoint upstream was accepted")
	}
	a := s.Apply(cfg(strings.Replace(doc, "url: http://10.0.0.3", "url: http://10.0.0.4", 1)))
	if fmt.Sprint(a.Kept, a.Changed) != "[api] [one]" || s.Get("api") != api {
		t.Errorf("applied %+v", a)
	}
	if got := cached(); got != "[api]" {
		t.Errorf("after one's endpoint changed, the cache held answers of %s, want [api]", got)
	}
	a = s.Apply(cfg(strings.Replace(doc, "zone: b}", "zone: b, weight: 2}", 1)))
	if fmt.Sprint(a.Changed) != "[api one]" || s.Get("api") == api {
		t.Errorf("applied %+v", a)
	}
	if got := cached(); got != "[api]" {
		t.Errorf("after api's weight and one's endpoint changed, the cache held answers of %s, want [api]", got)
	}
	if got := s.Shifts(); len(got) != 1 || got[0].ID != sh.ID {
		t.Errorf("after the change, shifts %+v, want %s kept", got, sh.ID)
	}
	if n := s.Get("api").Usage.Report().Today.Billable; n != 1 {
		t.Errorf("after the change, %d billable calls counted, want the 1 from before kept", n)
	}
	s.Apply(cfg(strings.Replace(doc, "  one:\n    url: http://10.0.0.3\n", "", 1)))
	if got := cached(); got != "[api]" {
		t.Errorf("after one was removed, the cache held answers of %s, want [api]", got)
	}
}

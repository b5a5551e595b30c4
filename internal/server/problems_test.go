package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seawall/seawall/internal/problem"
)

// The house, item 4: every kind of problem either listener answers with
// has its row in docs/errors.md, with its status. (This package builds
// both listeners, so every kind is defined by the time the test runs.)
func TestEveryProblemIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "errors.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // code -> status cell
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = m[2]
	}
	kinds := problem.Kinds()
	if len(kinds) < 25 {
		t.Fatalf("%d kinds defined: both listeners' tables should be in", len(kinds))
	}
	for _, k := range kinds {
		cell, ok := rows[k.Code]
		switch {
		case !ok:
			t.Errorf("%s (%d) has no row in docs/errors.md", k.Code, k.Status)
		case !strings.Contains(cell, fmt.Sprint(k.Status)):
			t.Errorf("%s: docs/errors.md says status %q, the code answers %d", k.Code, strings.TrimSpace(cell), k.Status)
		}
		if k.Title == "" || k.Hint == "" {
			t.Errorf("%s (%d): a kind has a title and a hint", k.Code, k.Status)
		}
	}
}

// Every answer Seawall makes itself says so with Seawall-Source: seawall,
// and its errors are problem+json with their code in Seawall-Error: the
// admin listener's 401 and its errors, the application listener's
// problems, and the job views. Before, the admin answered a plain-text
// 401 and its own JSON errors, and the job view carried no Seawall-Source.
func TestEveryAnswerOfSeawallsOwnSaysSo(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") }))
	defer up.Close()
	s, _, _ := startDoc(t, `listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: s3cret-admin-token-0001}
jobs: {store: `+filepath.Join(t.TempDir(), "jobs.db")+`}
upstreams:
  api: {url: `+up.URL+`, mode: async}
`)
	app, admin := "http://"+s.Addrs()[0].String(), "http://"+s.Addrs()[1].String()
	get := func(url, token string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	resp, err := http.Post(app+"/api/v1/events", "application/json", strings.NewReader(`{"e":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&accepted)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
		t.Fatalf("async POST: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tc := range []struct {
		name, url, token string
		status           int
		code             string // "" for a JSON answer that is no problem
	}{
		{"admin without a token", admin + "/admin/upstreams", "", 401, "admin-token-required"},
		{"admin with a wrong token", admin + "/admin/upstreams", "not-the-admin-token-0000", 401, "admin-token-required"},
		{"admin, a bad parameter", admin + "/admin/jobs?limit=0", "s3cret-admin-token-0001", 400, "bad-admin-request"},
		{"admin, no such incident", admin + "/admin/incidents/999999", "s3cret-admin-token-0001", 404, "not-found"},
		{"admin, a JSON answer", admin + "/admin/upstreams", "s3cret-admin-token-0001", 200, ""},
		{"app, an unknown upstream", app + "/nope/x", "", 404, "unknown-upstream"},
		{"app, an unknown job", app + "/_seawall/jobs/nope", "", 404, "unknown-job"},
		{"app, the job view", app + resp.Header.Get("Location"), "", 200, ""},
	} {
		r := get(tc.url, tc.token)
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.status)
		}
		if got := r.Header.Get("Seawall-Source"); got != "seawall" {
			t.Errorf("%s: Seawall-Source %q, want seawall", tc.name, got)
		}
		if tc.code == "" {
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q, want application/json", tc.name, ct)
			}
			continue
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: Content-Type %q, want application/problem+json", tc.name, ct)
		}
		if got := r.Header.Get("Seawall-Error"); got != tc.code {
			t.Errorf("%s: Seawall-Error %q, want %s", tc.name, got, tc.code)
		}
	}
}

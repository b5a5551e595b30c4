package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Vendor fidelity, acceptance 8: Seawall out of file descriptors (its
// limit cut with prlimit to the descriptors it holds) answers 503
// seawall-overloaded, and the vendor's health figures stay untouched: the
// breaker closed, no attempt counted as the vendor's error.
func TestOutOfFileDescriptorsIsNotTheVendorsFault(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	bin := buildSeawall(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close()
	addr, admin := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "seawall.yaml")
	doc := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: `+testAdminToken+`}
log: {level: error}
upstreams:
  api:
    url: %s
    breaker: {min_calls: 5, failure_rate: 50}
`, addr, admin, up.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	cmd := startServe(t, bin, cfg, base)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := strconv.Itoa(cmd.Process.Pid)

	// One kept-alive connection each to the app and admin listeners, made
	// before the limit: new connections could not be accepted after it.
	app := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
	ops := &http.Client{Transport: withToken(&http.Transport{MaxConnsPerHost: 1}), Timeout: 5 * time.Second}
	get(t, app, base+"/_seawall/jobs/0")
	get(t, ops, "http://"+admin+"/healthz")

	capDescriptors(t, prlimit, pid)
	for i := 0; i < 10; i++ {
		resp := get(t, app, base+"/api/v1/x")
		if resp.StatusCode != 503 || resp.Header.Get("Seawall-Error") != "seawall-overloaded" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("call %d out of descriptors: %d %s, want 503 seawall-overloaded with Retry-After", i+1, resp.StatusCode, resp.Header.Get("Seawall-Error"))
		}
	}
	metrics := body(t, get(t, ops, "http://"+admin+"/metrics"))
	for _, want := range []string{
		`seawall_breaker_state{state="closed",upstream="api"} 1`,
		`seawall_upstream_attempts_total{result="local",upstream="api"} 10`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `result="error"`) || !strings.Contains(metrics, `seawall_breaker_transitions_total{state="open",upstream="api"} 0`) {
		t.Errorf("metrics count the vendor's errors or an open breaker: Seawall's own trouble was held against the vendor")
	}

	if out, err := exec.Command(prlimit, "--pid", pid, "--nofile=1024:").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	if resp := get(t, app, base+"/api/v1/x"); resp.StatusCode != 200 {
		t.Errorf("with descriptors again: %d, want 200", resp.StatusCode)
	}
}

// capDescriptors sets process pid's soft descriptor limit (the hard one
// could not be raised back) to its lowest free descriptor, so that it can
// open no new one. A descriptor the process held for a moment when it was
// counted (the runtime reads its cgroup's files from time to time) would
// leave one free below the limit once closed: the limit is lowered again
// until the lowest free descriptor holds still for a while.
func capDescriptors(t *testing.T, prlimit, pid string) {
	t.Helper()
	for try := 0; try < 20; try++ {
		limit := lowestFreeFD(t, pid)
		if out, err := exec.Command(prlimit, "--pid", pid, "--nofile="+strconv.Itoa(limit)+":").CombinedOutput(); err != nil {
			t.Fatalf("prlimit: %v %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
		if lowestFreeFD(t, pid) == limit {
			return
		}
	}
	t.Fatal("the process's lowest free descriptor did not hold still in 20 tries")
}

// lowestFreeFD is the lowest descriptor number process pid has free: with
// its limit set there, it can open no new one.
func lowestFreeFD(t *testing.T, pid string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, e := range entries {
		n, _ := strconv.Atoi(e.Name())
		used[n] = true
	}
	n := 0
	for used[n] {
		n++
	}
	return n
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

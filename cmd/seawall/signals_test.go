package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Hardening, row 4: SIGHUP with a request in flight no longer kills the
// process: the request is answered, and Seawall goes on serving.
func TestSIGHUPDoesNotKill(t *testing.T) {
	bin := buildSeawall(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(time.Second)
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "seawall.yaml")
	doc := fmt.Sprintf("listen: %s\nadmin: {listen: \"off\"}\nlog: {level: error}\nupstreams:\n  api:\n    url: %s\n", addr, up.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	cmd := startServe(t, bin, cfg, base)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(base + "/api/slow")
		if err != nil {
			done <- 0
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	time.Sleep(200 * time.Millisecond) // the request is at the upstream
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 200 {
		t.Fatalf("request in flight across SIGHUP: %d, want 200", code)
	}
	resp, err := http.Get(base + "/api/again")
	if err != nil {
		t.Fatalf("after SIGHUP: %v; want Seawall still serving", err)
	}
	_ = resp.Body.Close()
}

package server

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Watch notices a change to the config file and to a secret file the
// config references with ${file:/path}: a rotated secret is reloaded as
// an edited config is. Before, only the config file itself was watched.
func TestWatchSeesTheConfigAndItsSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret, cfg := filepath.Join(dir, "api-key"), filepath.Join(dir, "seawall.yaml")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(secret, "key-1\n")
	write(cfg, "upstreams:\n  api:\n    url: http://127.0.0.1:1\n    headers: {X-Api-Key: \"${file:"+secret+"}\"}\n")
	var changes atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Watch(ctx, cfg, 10*time.Millisecond, func() { changes.Add(1) })
	waitFor := func(want int64, what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); changes.Load() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d changes seen, want %d", what, changes.Load(), want)
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // the first look
	write(secret, "key-2\n")
	waitFor(1, "the secret file rotated")
	write(cfg, "upstreams:\n  api:\n    url: http://127.0.0.1:2\n    headers: {X-Api-Key: \"${file:"+secret+"}\"}\n")
	waitFor(2, "the config edited")
	write(secret, "key-2\n") // rewritten unchanged: no change
	time.Sleep(100 * time.Millisecond)
	if n := changes.Load(); n != 2 {
		t.Errorf("%d changes after a secret rewritten unchanged, want still 2", n)
	}
}

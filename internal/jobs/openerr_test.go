package jobs

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hardening, row 18: a store written by a newer Seawall (a schema version
// this build does not know) refuses to start, on both stores, rather than
// misread or damage jobs it does not understand.
func TestOpenRefusesANewerSchema(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		s, err := Open(context.Background(), dsn, testConfig, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		const future = "INSERT INTO river_migration (line, version) VALUES ('main', 9999)"
		if strings.HasPrefix(dsn, "postgres") {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, future)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			db, err := sql.Open("sqlite", dsn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(future); err != nil {
				t.Fatal(err)
			}
			_ = db.Close()
		}
		_, err = Open(ctx, dsn, testConfig, &recorder{})
		if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "9999") {
			t.Fatalf("opening a store from a newer Seawall: %v, want ErrSchemaNewer naming its version", err)
		}
		if !strings.HasPrefix(dsn, "postgres") && !strings.Contains(err.Error(), dsn) {
			t.Errorf("the refusal does not name the file: %v", err)
		}
	})
}

// mountTmpfs mounts a tmpfs with opts at a fresh directory until the
// test ends: a read-only or a full file system, as an operator's can be.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a read-only or full file system needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount -t tmpfs refused here (%v: %s); the test needs a file system of its own", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// Hardening, row 18: a read-only data directory and a full disk are told
// in words, with the store's path; before, "unable to open database file
// (14)" and "disk I/O error" named neither.
func TestOpenErrorsNameThePathAndTheCause(t *testing.T) {
	t.Run("read-only directory", func(t *testing.T) {
		dir := mountTmpfs(t, "ro,size=1m")
		path := filepath.Join(dir, "jobs.db")
		_, err := Open(context.Background(), path, testConfig, &recorder{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not writable") {
			t.Fatalf("opening a store on a read-only file system: %v; want the path and 'not writable'", err)
		}
	})
	t.Run("full disk", func(t *testing.T) {
		dir := mountTmpfs(t, "size=256k")
		// Fill it: the write fails once the file system is full.
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 4096)
		for range 1024 {
			if _, err := f.Write(chunk); err != nil {
				break
			}
		}
		_ = f.Close()
		path := filepath.Join(dir, "jobs.db")
		_, err = Open(context.Background(), path, testConfig, &recorder{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "is the disk full") {
			t.Fatalf("opening a store on a full disk: %v; want the path and the disk named full", err)
		}
		t.Log(err)
	})
}

// The embedded store holds request bodies and headers: a new one, and the
// files SQLite keeps beside it, are readable by their owner only.
func TestNewSQLiteStoreIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	s, err := Open(context.Background(), path, testConfig, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := s.Enqueue(ctx, Delivery{Upstream: "api", Method: "POST", Path: "/x", Body: []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read the jobs", name, info.Mode().Perm())
		}
	}
	_ = s.Stop(ctx)
}

// Trust, item 5: a store that answers but cannot write is not ready. On
// a full file system the embedded store's Ping says ErrCannotWrite
// (/readyz answers 503), an enqueue is refused rather than half-written,
// and once room is made, Ping and enqueues succeed again. Before, Ping
// only read, so /readyz said ready while every enqueue failed.
func TestPingSaysAStoreOnAFullDiskCannotWrite(t *testing.T) {
	dir := mountTmpfs(t, "size=4m")
	s, err := Open(context.Background(), filepath.Join(dir, "jobs.db"), testConfig, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer func() { _ = s.Stop(ctx) }()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with room on the disk: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for range 256 { // more than the file system holds
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	_ = f.Close()
	if err := s.Ping(ctx); !errors.Is(err, ErrCannotWrite) {
		t.Errorf("Ping on a full disk: %v, want ErrCannotWrite", err)
	}
	if _, _, err := s.Enqueue(ctx, Delivery{Upstream: "api", Method: "POST", Path: "/x", Body: make([]byte, 256<<10)}); err == nil {
		t.Error("an enqueue on a full disk succeeded: the test would prove nothing")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once room is made: %v, want ready", err)
	}
	if _, _, err := s.Enqueue(ctx, Delivery{Upstream: "api", Method: "POST", Path: "/x"}); err != nil {
		t.Errorf("an enqueue once room is made: %v", err)
	}
}

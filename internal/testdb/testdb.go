// Package testdb gives tests a PostgreSQL schema of their own.
package testdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresURL creates a fresh schema in the database named by
// SEAWALL_TEST_POSTGRES (default: the local test database), drops it when
// the test ends, and returns a URL whose search_path is that schema. An
// unreachable database fails the test under CI=true and skips it otherwise.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SEAWALL_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unreachable at %s: %v", base, err)
		}
		t.Skipf("PostgreSQL unreachable at %s (set SEAWALL_TEST_POSTGRES): %v", base, err)
	}
	schema := fmt.Sprintf("seawall_test_%d", rand.Int64())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

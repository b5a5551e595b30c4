package jobs

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seawall/seawall/internal/testdb"
)

// Enqueues on PostgreSQL keep the pending lists of River's GIN indexes
// small, so that no enqueue pays for merging megabytes of them at once:
// after 1,500 jobs (about 600 kB of args) each list holds at most a few
// pages. With PostgreSQL's default limit (4MB) all 1,500 would be
// pending, and the batch that passed it would merge them all.
func TestEnqueueKeepsGINPendingListsSmall(t *testing.T) {
	dsn := testdb.PostgresURL(t)
	s, err := Open(context.Background(), dsn, testConfig, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	ctx := context.Background()
	for i := range 1500 {
		body := fmt.Sprintf(`{"event":%d,"payload":"%0300d"}`, i, i)
		if _, _, err := s.Enqueue(ctx, Delivery{Upstream: "api", Method: "POST", Path: "/v1/events", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgstattuple SCHEMA public"); err != nil {
		t.Fatalf("pgstattuple, which reads a GIN index's pending list: %v", err)
	}
	for _, index := range []string{"river_job_args_index", "river_job_metadata_index"} {
		var pages, tuples int64
		err := conn.QueryRow(ctx, "SELECT pending_pages, pending_tuples FROM public.pgstatginindex($1::regclass)", index).Scan(&pages, &tuples)
		if err != nil {
			t.Fatal(err)
		}
		// 64kB is eight pages; the list is merged once it passes that.
		if pages > 9 {
			t.Errorf("%s: %d pending pages (%d tuples) after 1,500 enqueues, want at most 9", index, pages, tuples)
		}
	}
}

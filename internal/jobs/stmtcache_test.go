package jobs

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	"modernc.org/sqlite"
)

// countingConn is SQLite's connection, counting the statements prepared
// through it and the query texts it was handed to compile and run itself.
type countingConn struct {
	driver.Conn
	prepares, direct, closes *atomic.Int64
}

func (c countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.prepares.Add(1)
	s, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return countingStmt{s, c.closes}, nil
}

func (c countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.direct.Add(1)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.direct.Add(1)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

type countingStmt struct {
	driver.Stmt
	closes *atomic.Int64
}

func (s countingStmt) Close() error { s.closes.Add(1); return s.Stmt.Close() }

func (s countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

type countingConnector struct {
	driver.Connector
	prepares, direct, closes atomic.Int64
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return countingConn{conn, &c.prepares, &c.direct, &c.closes}, nil
}

// cachedDB opens a SQLite file through the statement cache, over a
// connector that counts; one connection, as the store has.
func cachedDB(t *testing.T, size int) (*sql.DB, *countingConnector) {
	t.Helper()
	inner, err := sqlite.NewConnector("file:" + filepath.Join(t.TempDir(), "c.db") + "?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingConnector{Connector: inner}
	db := sql.OpenDB(stmtCacheConnector{Connector: counting, size: size})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	mustExec(t, db, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`)
	return db, counting
}

func mustExec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestStmtCachePreparesEachQueryOnce(t *testing.T) {
	db, n := cachedDB(t, 8)
	for i := range 50 {
		mustExec(t, db, `INSERT INTO t (k, v) VALUES (?, ?)`, i, "v")
		var got int
		if err := db.QueryRow(`SELECT count(*) FROM t WHERE k <= ?`, i).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("count after %d inserts: %d, %v", i+1, got, err)
		}
	}
	// CREATE, INSERT and SELECT: three texts, each compiled once; none
	// handed to the driver to compile afresh.
	if p, d := n.prepares.Load(), n.direct.Load(); p != 3 || d != 0 {
		t.Errorf("prepared %d statements and ran %d texts uncached for 3 distinct queries run 101 times, want 3 and 0", p, d)
	}
}

// A query run again while rows of its first run are still open (one
// connection, as in a transaction) must not disturb those rows.
func TestStmtCacheLeavesOpenRowsAlone(t *testing.T) {
	db, n := cachedDB(t, 8)
	for i := range 10 {
		mustExec(t, db, `INSERT INTO t (k, v) VALUES (?, ?)`, i, string(rune('a'+i)))
	}
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	const q = `SELECT v FROM t WHERE k >= ? ORDER BY k`
	first, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	read := func(rows *sql.Rows, max int) {
		for i := 0; i < max && rows.Next(); i++ {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
	}
	read(first, 3)
	second, err := tx.QueryContext(ctx, q, 7)
	if err != nil {
		t.Fatal(err)
	}
	read(second, 100)
	_ = second.Close()
	read(first, 100)
	_ = first.Close()
	if want := "abchijdefghij"; join(got) != want {
		t.Errorf("read %q, want %q: the second run disturbed the first's rows", join(got), want)
	}
	if d := n.direct.Load(); d != 1 {
		t.Errorf("%d queries ran uncached, want 1: the run while the cached statement was busy", d)
	}
	// Both closed: the next run takes the cached statement again.
	if err := tx.QueryRowContext(ctx, q, 9).Scan(new(string)); err != nil {
		t.Fatal(err)
	}
	if d := n.direct.Load(); d != 1 {
		t.Errorf("%d queries ran uncached after the rows closed, want still 1", d)
	}
}

func join(s []string) string {
	var out string
	for _, v := range s {
		out += v
	}
	return out
}

// The cache holds size statements, dropping the one used longest ago; one
// dropped while its rows are open is closed when they close.
func TestStmtCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	db, n := cachedDB(t, 2)
	ctx := context.Background()
	conn, err := db.Conn(ctx) // the one connection, held: rows stay open while others run
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	mustExec(t, conn, `INSERT INTO t (k, v) VALUES (1, 'x')`)
	rows, err := conn.QueryContext(ctx, `SELECT v FROM t`) // busy while open
	if err != nil {
		t.Fatal(err)
	}
	one := func(q string) {
		t.Helper()
		if err := conn.QueryRowContext(ctx, q).Scan(new(int)); err != nil {
			t.Fatal(err)
		}
	}
	closesBefore := n.closes.Load()
	one(`SELECT 1`)
	one(`SELECT 2`)
	one(`SELECT 3`)
	// Through a cache of two: the INSERT, the open SELECT v and SELECT 1
	// were dropped; the open one is closed only when its rows are.
	if c := n.closes.Load() - closesBefore; c != 2 {
		t.Errorf("%d statements closed on eviction, want 2 (the INSERT and SELECT 1)", c)
	}
	var v string
	if !rows.Next() || rows.Scan(&v) != nil || v != "x" {
		t.Fatalf("the evicted statement's open rows: %q, %v", v, rows.Err())
	}
	before := n.closes.Load()
	_ = rows.Close()
	if n.closes.Load() != before+1 {
		t.Errorf("the evicted statement was not closed when its rows closed")
	}
	// SELECT 3 is still cached, SELECT 1 is prepared again.
	p := n.prepares.Load()
	one(`SELECT 3`)
	one(`SELECT 1`)
	if got := n.prepares.Load() - p; got != 1 {
		t.Errorf("%d prepares for one cached and one evicted query, want 1", got)
	}
}

// A statement kept from before a change of schema sees the new schema, and
// a script of several statements runs whole each time.
func TestStmtCacheSchemaChangeAndScripts(t *testing.T) {
	db, _ := cachedDB(t, 8)
	mustExec(t, db, `INSERT INTO t (k, v) VALUES (1, 'a')`)
	cols := func() int {
		rows, err := db.Query(`SELECT * FROM t`)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rows.Close() }()
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return len(c)
	}
	if c := cols(); c != 2 {
		t.Fatalf("%d columns, want 2", c)
	}
	mustExec(t, db, `ALTER TABLE t ADD COLUMN w TEXT`)
	if c := cols(); c != 3 {
		t.Errorf("after ALTER TABLE the cached SELECT * gives %d columns, want 3", c)
	}
	const script = `INSERT INTO t (v) VALUES ('s'); INSERT INTO t (v) VALUES ('s')`
	mustExec(t, db, script)
	mustExec(t, db, script)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t WHERE v = 's'`).Scan(&n); err != nil || n != 4 {
		t.Errorf("a two-statement script run twice inserted %d rows (%v), want 4", n, err)
	}
}

// A run ended by its context leaves the statement ready for the next.
func TestStmtCacheAfterACanceledRun(t *testing.T) {
	db, _ := cachedDB(t, 8)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, 1, "a"); err == nil {
		t.Fatal("an insert under a canceled context succeeded")
	}
	mustExec(t, db, `INSERT INTO t (k, v) VALUES (?, ?)`, 2, "b")
	var v string
	if err := db.QueryRow(`SELECT v FROM t WHERE k = ?`, 2).Scan(&v); err != nil || v != "b" {
		t.Errorf("after a canceled run: %q, %v", v, err)
	}
}

// Rows read through a kept statement still tell database/sql their
// columns' types, as the driver's own rows do.
func TestStmtCacheRowsKeepColumnTypes(t *testing.T) {
	db, _ := cachedDB(t, 8)
	mustExec(t, db, `INSERT INTO t (k, v) VALUES (1, 'a')`)
	for range 2 { // prepared, then kept
		rows, err := db.Query(`SELECT k, v FROM t`)
		if err != nil {
			t.Fatal(err)
		}
		types, err := rows.ColumnTypes()
		_ = rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(types) != 2 || types[0].DatabaseTypeName() != "INTEGER" || types[1].DatabaseTypeName() != "TEXT" {
			t.Fatalf("column types %v, want INTEGER and TEXT", types)
		}
		if st := types[1].ScanType(); st == nil || st.Kind() != reflect.String {
			t.Errorf("scan type of the TEXT column: %v, want string", st)
		}
	}
}

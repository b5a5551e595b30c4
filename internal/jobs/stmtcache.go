package jobs

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"sync"
)

// The SQLite store keeps the statements River runs prepared. River calls
// database/sql with query text each time, and the SQLite driver compiles
// that text anew for every call: about 8% of an enqueue's CPU, and half of
// an idle poll for available jobs, which on SQLite runs in Seawall's own
// process (docs/jobs.md has the figures).
// A statement SQLite has compiled is run again by resetting it; a change of
// schema recompiles it (sqlite3_prepare_v2), so keeping one is safe.
//
// stmtCacheSize bounds the statements one connection keeps; River's queries
// and the store's own number a few dozen.
const stmtCacheSize = 64

// stmtCacheConnector wraps a driver's connector so that each connection it
// makes keeps the statements run on it.
type stmtCacheConnector struct {
	driver.Connector
	size int
}

func (c stmtCacheConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newStmtCacheConn(conn, c.size)
}

// errNoStmtCache: the driver's connection lacks what the cache needs.
var errNoStmtCache = errors.New("jobs: the SQL driver's connection lacks the context methods the statement cache needs")

// stmtCacheConn is a connection that runs query text through a statement it
// prepared for that text before, when it has one and no open rows use it.
// database/sql uses a connection from one goroutine at a time; the mutex
// is for the rows, which release their statement when closed.
type stmtCacheConn struct {
	conn    driver.Conn
	prepare driver.ConnPrepareContext
	exec    driver.ExecerContext
	query   driver.QueryerContext
	begin   driver.ConnBeginTx
	size    int

	mu    sync.Mutex
	stmts map[string]*cachedStmt // guarded by mu
	tick  uint64                 // guarded by mu
}

// stmtContext is a prepared statement that runs with a context.
type stmtContext interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cachedStmt is one kept statement; its fields but s are guarded by its
// connection's mu.
type cachedStmt struct {
	s    stmtContext
	used uint64 // the tick of its last use, for eviction
	busy bool   // in use: run, or rows read from it are open
	gone bool   // dropped while busy: closed on release
}

func newStmtCacheConn(conn driver.Conn, size int) (driver.Conn, error) {
	p, ok1 := conn.(driver.ConnPrepareContext)
	e, ok2 := conn.(driver.ExecerContext)
	q, ok3 := conn.(driver.QueryerContext)
	b, ok4 := conn.(driver.ConnBeginTx)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		_ = conn.Close()
		return nil, errNoStmtCache
	}
	return &stmtCacheConn{conn: conn, prepare: p, exec: e, query: q, begin: b, size: size, stmts: map[string]*cachedStmt{}}, nil
}

// take returns the cached statement for query, prepared now if need be,
// marked busy; nil when the one cached is busy or the driver's statement
// cannot run with a context (the caller runs the query uncached). An error
// is the driver's, from preparing.
func (c *stmtCacheConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	c.tick++
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			c.mu.Unlock()
			return nil, nil
		}
		cs.busy, cs.used = true, c.tick
		c.mu.Unlock()
		return cs, nil
	}
	c.mu.Unlock()
	s, err := c.prepare.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	sc, ok := s.(stmtContext)
	if !ok {
		_ = s.Close()
		return nil, nil
	}
	cs := &cachedStmt{s: sc, busy: true}
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.used = c.tick
	if old, ok := c.stmts[query]; ok { // not while database/sql keeps to one goroutine, but never leaked
		c.dropLocked(query, old)
	} else if len(c.stmts) >= c.size {
		c.evictLocked()
	}
	c.stmts[query] = cs
	return cs, nil
}

// evictLocked drops the statement used longest ago.
func (c *stmtCacheConn) evictLocked() {
	var oldest string
	var at *cachedStmt
	for q, cs := range c.stmts {
		if at == nil || cs.used < at.used {
			oldest, at = q, cs
		}
	}
	if at != nil {
		c.dropLocked(oldest, at)
	}
}

// dropLocked takes cs out of the cache and closes it, or has its release
// close it while rows read from it are open.
func (c *stmtCacheConn) dropLocked(query string, cs *cachedStmt) {
	delete(c.stmts, query)
	if cs.busy {
		cs.gone = true
		return
	}
	_ = cs.s.Close()
}

// release makes cs free for the next run of its query.
func (c *stmtCacheConn) release(cs *cachedStmt) {
	c.mu.Lock()
	cs.busy = false
	gone := cs.gone
	c.mu.Unlock()
	if gone {
		_ = cs.s.Close()
	}
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.exec.ExecContext(ctx, query, args)
	}
	defer c.release(cs)
	return cs.s.ExecContext(ctx, args)
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.query.QueryContext(ctx, query, args)
	}
	rows, err := cs.s.QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &stmtCacheRows{Rows: rows, c: c, cs: cs}, nil
}

// stmtCacheRows gives its statement back when closed. It passes on what
// database/sql asks rows for beyond the values: column types.
type stmtCacheRows struct {
	driver.Rows
	c    *stmtCacheConn
	cs   *cachedStmt
	once sync.Once
}

func (r *stmtCacheRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(func() { r.c.release(r.cs) })
	return err
}

func (r *stmtCacheRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *stmtCacheRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *stmtCacheRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, is := r.Rows.(driver.RowsColumnTypeNullable); is {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

// Close closes the statements the connection keeps, then the connection.
func (c *stmtCacheConn) Close() error {
	c.mu.Lock()
	for q, cs := range c.stmts {
		c.dropLocked(q, cs)
	}
	c.mu.Unlock()
	return c.conn.Close()
}

// The rest is the driver's own.

func (c *stmtCacheConn) Prepare(query string) (driver.Stmt, error) { return c.conn.Prepare(query) }

func (c *stmtCacheConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.prepare.PrepareContext(ctx, query)
}

func (c *stmtCacheConn) Begin() (driver.Tx, error) { return c.conn.Begin() } //nolint:staticcheck // driver.Conn requires it

func (c *stmtCacheConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.begin.BeginTx(ctx, opts)
}

func (c *stmtCacheConn) Ping(ctx context.Context) error {
	if p, ok := c.conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *stmtCacheConn) ResetSession(ctx context.Context) error {
	if r, ok := c.conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *stmtCacheConn) IsValid() bool {
	if v, ok := c.conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

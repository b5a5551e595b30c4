// Package cluster is what several Seawall replicas share through Redis:
// each global upstream's pace (one GCRA per key on Redis's clock) and
// pause, and the list of live replicas (docs/distributed.md). It is built
// once per process from the redis block and handed to the upstream set.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/ratelimit"
	"github.com/seawall/seawall/internal/routine"
)

// heartbeat is how often a replica announces itself; a replica not heard
// of for missedBeats of them is gone.
const (
	heartbeat   = time.Second
	missedBeats = 3
)

// Cluster is this replica's link to the others.
type Cluster struct {
	rdb     atomic.Pointer[redis.Client] // swapped by revive
	opts    *redis.Options
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	self    Replica

	clock offset       // Redis's clock on this one
	share atomic.Int64 // at the last heartbeat: this replica's rank << 32 | live replicas
	up    atomic.Bool  // whether Redis answered the last call
	// group runs revive until done ends (both set by Run); reviving
	// says one runs.
	group    atomic.Pointer[routine.Group]
	done     atomic.Pointer[<-chan struct{}]
	reviving atomic.Bool
	// forget is told the prefixes of the cache purged (cache.go).
	forget atomic.Pointer[func(prefix string)]
	// isolated reads the endpoints this replica has isolated, announced
	// at each beat.
	isolated atomic.Pointer[func() map[string][]string]

	mu       sync.Mutex
	paused   map[string]time.Time              // upstream → until, on this clock, as published
	hear     map[string]func(ratelimit.Signal) // upstream → its limiter, told what others learned
	onShifts func([]Shifted, map[string]bool)  // told the shifts in force and removed (shift.go)
	wake     map[string]func()                 // published message → who reads the breaker again (breaker.go)
	state    func(up bool)                     // told of each change of up

	disagree func([]string) // told when disagreements change
	differ   []string       // the disagreements last told
}

// Replica is one live Seawall, as it announces itself.
type Replica struct {
	ID      string            `json:"id"`
	Zone    string            `json:"zone,omitempty"`
	Version string            `json:"version"`
	Started time.Time         `json:"started"`
	Seen    time.Time         `json:"seen,omitempty"`
	Digests map[string]string `json:"upstreams,omitempty"` // global upstream → digest of its limit settings
	// Isolated are the endpoints this replica's own calls have isolated,
	// by upstream: each replica judges the endpoints by its own calls
	// (docs/distributed.md, "Endpoint health").
	Isolated map[string][]string `json:"isolated,omitempty"`
}

// Hooks are told of what changes in the cluster; each may be nil.
type Hooks struct {
	// State is told each time Redis stops or starts answering.
	State func(up bool)
	// Disagree is told when the global upstreams whose limit settings
	// differ between live replicas change (empty: they agree again).
	Disagree func(upstreams []string)
}

// Open connects to the redis block's server. It does not fail when Redis
// is down: the replicas' failure policy applies until it answers.
func Open(c *config.Redis, self Replica, log *slog.Logger, hooks Hooks) (*Cluster, error) {
	opts, err := redis.ParseURL(c.URL.Value())
	if err != nil {
		return nil, errors.New("redis.url: the client cannot use it") // never the URL: it may hold a password
	}
	if p := c.Password.Value(); p != "" {
		opts.Password = p
	}
	t := c.Timeout.D()
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = t, t, t
	opts.MaxRetries = -1 // one try: the failure policy decides, not a retry loop
	opts.ContextTimeoutEnabled = true
	if self.ID == "" {
		self.ID = newID()
	}
	// The client's own lines (a failed dial, each time) would go to
	// stderr unstructured, many a second while Redis is away: they are
	// debug lines of the log, whose one line per change says the rest.
	redis.SetLogger(clientLog{log})
	cl := &Cluster{opts: opts, prefix: c.KeyPrefix, timeout: t, log: log, self: self, paused: map[string]time.Time{}, hear: map[string]func(ratelimit.Signal){}, wake: map[string]func(){}, state: hooks.State, disagree: hooks.Disagree}
	cl.rdb.Store(redis.NewClient(opts))
	cl.share.Store(1) // rank 0 of 1 until the first heartbeat
	cl.up.Store(true)
	return cl, nil
}

// clientLog hands the Redis client's lines to the log at debug level.
type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// newID is a replica id: random, so that restarts and hosts never collide.
func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ID is this replica's id.
func (c *Cluster) ID() string { return c.self.ID }

// Up reports whether Redis answered the last call.
func (c *Cluster) Up() bool { return c.up.Load() }

// Share is this replica's rank among the live replicas (sorted by id) and
// how many there were at the last heartbeat, at least 1 (this one).
func (c *Cluster) Share() (rank, n int) {
	v := c.share.Load()
	return int(v >> 32), int(v & 0xffffffff)
}

// db is the client Redis calls go through now.
func (c *Cluster) db() *redis.Client { return c.rdb.Load() }

// result records whether a Redis call was answered, telling of a change.
func (c *Cluster) result(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		if !c.up.Swap(true) {
			if f := c.forget.Load(); f != nil {
				(*f)("") // purges may have been missed while Redis did not answer
			}
			if c.state != nil {
				c.state(true)
			}
		}
		return nil
	}
	if c.up.Swap(false) {
		if c.state != nil {
			c.state(false)
		}
		c.group.Load().Go("redis revive", c.revive) // a nil group (before Run) starts it alone
	}
	return fmt.Errorf("redis: %w", err)
}

// reviveEvery is how often, while Redis does not answer, a replica looks
// whether its server listens again.
const reviveEvery = 100 * time.Millisecond

// revive watches Redis's address while calls fail, until they are
// answered again. The client's pool, once as many dials as it holds
// connections have failed, fails every call at once and tries one dial a
// second; a replica would come back to the cluster up to a second after
// Redis did. So once the server accepts a connection again and a call
// through the client still fails at once (not a server that hangs: that
// call takes its timeout), the client is replaced by a new one.
func (c *Cluster) revive() {
	if !c.reviving.CompareAndSwap(false, true) {
		return
	}
	defer c.reviving.Store(false)
	var done <-chan struct{} // nil before Run: never
	if d := c.done.Load(); d != nil {
		done = *d
	}
	t := time.NewTicker(reviveEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if c.up.Load() {
			return
		}
		conn, err := net.DialTimeout(c.opts.Network, c.opts.Addr, c.timeout)
		if err != nil {
			continue // not listening yet
		}
		_ = conn.Close()
		old := c.db()
		ctx, cancel := c.call(context.Background())
		start := time.Now()
		err = old.Ping(ctx).Err()
		cancel()
		if c.result(err) == nil {
			return
		}
		if errors.Is(err, redis.ErrClosed) {
			return // the cluster is closing
		}
		if time.Since(start) < c.timeout/2 && c.rdb.CompareAndSwap(old, redis.NewClient(c.opts)) {
			// Calls still on the old client end within the timeout.
			time.AfterFunc(2*c.timeout+time.Second, func() { _ = old.Close() })
		}
	}
}

// key is a key of this deployment's.
func (c *Cluster) key(parts ...string) string {
	return c.prefix + ":" + strings.Join(parts, ":")
}

// tenant is a rate-limit key as it is kept in Redis: hashed, since a
// tenant's header value may be a credential.
func tenant(k string) string {
	if k == "" {
		return "-"
	}
	h := sha256.Sum256([]byte(k))
	return hex.EncodeToString(h[:12])
}

// call bounds one Redis call by the timeout.
func (c *Cluster) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Run announces this replica every heartbeat and hears the pauses others
// publish, until ctx ends; then it leaves the list.
func (c *Cluster) Run(ctx context.Context, g *routine.Group) {
	done := ctx.Done()
	c.group.Store(g)
	c.done.Store(&done)
	g.Go("cluster pauses", func() { c.listen(ctx) })
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	c.sampleClock(ctx, clockSamples)
	for {
		c.beat(ctx)
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			_ = c.db().ZRem(lctx, c.key("replicas"), c.self.ID).Err()
			cancel()
			_ = c.db().Close()
			return
		case <-t.C:
		}
	}
}

// clockSamples is how many times a replica reads Redis's clock as it
// starts, before its first heartbeat: the offset (clock.go) is the least
// sample, and the first slots it gives out are as right as the first
// samples. A single slow first answer (a cold connection, a busy host)
// put this replica's calls late by as much, next to another replica's.
const clockSamples = 5

// sampleClock reads Redis's clock n times, for the offset.
func (c *Cluster) sampleClock(ctx context.Context, n int) {
	for range n {
		cctx, cancel := c.call(ctx)
		rt, err := c.db().Time(cctx).Result()
		arrived := time.Now()
		cancel()
		if c.result(err) != nil {
			return
		}
		c.clock.local(rt, arrived)
	}
}

// beatScript adds this replica to the list with Redis's time, drops those
// not heard of, keeps its description, and counts the live ones.
var beatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// AnnounceIsolated has f read, at each heartbeat, the endpoints this
// replica has isolated, by upstream, for the other replicas' view.
func (c *Cluster) AnnounceIsolated(f func() map[string][]string) { c.isolated.Store(&f) }

func (c *Cluster) beat(ctx context.Context) {
	self := c.self
	if f := c.isolated.Load(); f != nil {
		self.Isolated = (*f)()
	}
	desc, _ := marshalReplica(self)
	cctx, cancel := c.call(ctx)
	defer cancel()
	ids, err := beatScript.Run(cctx, c.db(), []string{c.key("replicas"), c.key("replica", self.ID)},
		self.ID, int64(missedBeats*heartbeat/time.Millisecond), desc).StringSlice()
	if c.result(err) != nil {
		return
	}
	slices.Sort(ids)
	rank := slices.Index(ids, self.ID)
	if rank < 0 { // not listed (a Redis in trouble): alone
		ids, rank = []string{self.ID}, 0
	}
	c.share.Store(int64(rank)<<32 | int64(len(ids)))
	c.readShifts(ctx)
	if c.disagree == nil {
		return
	}
	list, err := c.List(ctx)
	if err != nil {
		return
	}
	if d := Disagreements(list); !slices.Equal(d, c.differ) {
		c.differ = d
		c.disagree(d)
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// reserveScript is GCRA on Redis's clock, with reservations: a call takes
// the next slot of its key when that comes within its wait, and is told
// how long until it, so that it sleeps once instead of asking again. The
// upstream's pause holds every key: after it the bucket starts empty, and
// the calls it held leave one an interval apart, cluster-wide. Times are
// microseconds.
//
// KEYS: the key's theoretical arrival time, the upstream's pause.
// ARGV: interval (0: unlimited, only the pause binds), burst, max wait,
// and a time no slot may come before (0: none), when a replica comes back
// from pacing on its own.
// Returns {taken (0/1), wait, paused (0/1), now}.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local iv, burst, maxwait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local notbefore = tonumber(ARGV[4]) or 0
if notbefore > pause then pause = notbefore end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local floor = pause + (burst - 1) * iv
if floor > tat then tat = floor end
if tat < now then tat = now end
local at = tat - (burst - 1) * iv
if pause > at then at = pause end
local wait = at - now
if wait < 0 then wait = 0 end
if wait > maxwait then
  local paused = 0
  if pause > now then paused = 1 end
  return {0, wait, paused, now}
end
if iv > 0 then
  local nt = tat + iv
  redis.call('SET', KEYS[1], nt, 'PX', math.floor((nt - now) / 1000) + 1000)
end
return {1, wait, 0, now}
`)

// pauseScript sets the upstream's pause to now + d on Redis's clock,
// never shortening one in force, and says how long it now lasts.
var pauseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur > untl then untl = cur end
redis.call('SET', KEYS[1], untl, 'PX', math.floor((untl - now) / 1000) + 1000)
return untl - now
`)

// backScript keeps the first time a replica coming back to Redis sets
// (microseconds on the replicas' wall clock, which the turns are laid
// on), for ttl milliseconds, and answers the time kept. A value that is
// not a time is replaced.
//
// KEYS: the upstream's return. ARGV: the time, the ttl.
var backScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
local n = v and tonumber(v)
if n and n > 0 then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)

// Upstream is one global upstream's share of the cluster: its pace and
// pause. It implements ratelimit.Shared.
type Upstream struct {
	c    *Cluster
	name string
}

// Upstream returns the handle of the named global upstream.
func (c *Cluster) Upstream(name string) *Upstream { return &Upstream{c: c, name: name} }

// Reserve implements ratelimit.Shared. The slot's time is the store's,
// put on this clock by the offset between the two (clock.go).
func (u *Upstream) Reserve(ctx context.Context, key string, iv time.Duration, burst int, maxWait time.Duration, notBefore time.Time) (at time.Time, wait time.Duration, taken, paused bool, err error) {
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	var floor int64
	if !notBefore.IsZero() {
		floor = u.c.clock.redis(notBefore).UnixMicro()
	}
	res, err := reserveScript.Run(cctx, u.c.db(), []string{u.c.key("pace", u.name, tenant(key)), u.c.key("pause", u.name)},
		iv.Microseconds(), max(burst, 1), maxWait.Microseconds(), floor).Int64Slice()
	answered := time.Now()
	if err = u.c.result(err); err != nil {
		return time.Time{}, 0, false, false, err
	}
	if len(res) != 4 || res[1] < 0 || res[3] <= 0 {
		// Not the script's answer: a proxy or another server in Redis's
		// place. Counted as Redis unreachable, never a panic.
		return time.Time{}, 0, false, false, u.c.result(errors.New("unexpected answer to the pace script"))
	}
	wait = time.Duration(res[1]) * time.Microsecond
	now := u.c.clock.local(time.UnixMicro(res[3]), answered)
	return now.Add(wait), wait, res[0] == 1, res[2] == 1, nil
}

// Pause implements ratelimit.Shared: every replica's calls are held for d
// (Redis's clock), and the replicas are told at once so that calls they
// released already, waiting for their slot, hold too.
func (u *Upstream) Pause(ctx context.Context, d time.Duration) error {
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	left, err := pauseScript.Run(cctx, u.c.db(), []string{u.c.key("pause", u.name)}, d.Microseconds()).Int64()
	if err = u.c.result(err); err != nil {
		return err
	}
	msg := u.name + " " + strconv.FormatInt(left, 10)
	return u.c.result(u.c.db().Publish(cctx, u.c.key("pauses"), msg).Err())
}

// PausedUntil implements ratelimit.Shared: the end of the last pause
// another replica published, on this replica's clock.
func (u *Upstream) PausedUntil() time.Time {
	u.c.mu.Lock()
	defer u.c.mu.Unlock()
	return u.c.paused[u.name]
}

// Back implements ratelimit.Shared: the first replica back from Redis
// being unreachable sets when the turns end, and the others are told it.
func (u *Upstream) Back(ctx context.Context, until time.Time, ttl time.Duration) (time.Time, error) {
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	v, err := backScript.Run(cctx, u.c.db(), []string{u.c.key("back", u.name)}, until.UnixMicro(), max(ttl.Milliseconds(), 1)).Text()
	if err = u.c.result(err); err != nil {
		return time.Time{}, err
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil || us <= 0 {
		// Not the script's answer: a proxy or another server in Redis's
		// place. This replica's own time, never a panic.
		return until, nil
	}
	return time.UnixMicro(us), nil
}

// Share implements ratelimit.Shared.
func (u *Upstream) Share() (rank, n int) { return u.c.Share() }

// listen hears the pauses other replicas publish until ctx ends,
// resubscribing when Redis comes back.
func (c *Cluster) listen(ctx context.Context) {
	for ctx.Err() == nil {
		sub := c.db().Subscribe(ctx, c.key("pauses"))
		ch := sub.Channel()
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case m, ok := <-ch:
				if !ok {
					open = false
					break
				}
				c.heard(m.Payload, time.Now())
			}
		}
		_ = sub.Close()
		select {
		case <-ctx.Done():
		case <-time.After(heartbeat):
		}
	}
}

// heard applies one published pause, "upstream micros-left", or a rate
// or stated quota another replica learned (signal.go). Anything else is
// logged and dropped.
func (c *Cluster) heard(msg string, now time.Time) {
	if msg == shiftsMessage {
		c.readShifts(context.Background())
		return
	}
	if c.heardPurge(msg) {
		return
	}
	if strings.HasPrefix(msg, "breaker ") {
		c.mu.Lock()
		wake := c.wake[msg]
		c.mu.Unlock()
		if wake != nil {
			wake()
		}
		return
	}
	if strings.HasPrefix(msg, "rate ") || strings.HasPrefix(msg, "quota ") {
		name, s, ok := c.signal(msg)
		c.mu.Lock()
		f := c.hear[name]
		c.mu.Unlock()
		switch {
		case name == "":
			c.log.Warn("a signal published in Redis could not be read; ignored", "message", truncate(msg, 80))
		case ok && f != nil: // not this replica's own
			f(s)
		}
		return
	}
	name, left, ok := strings.Cut(msg, " ")
	us, err := strconv.ParseInt(left, 10, 64)
	if !ok || err != nil || us < 0 || us > int64(24*time.Hour/time.Microsecond) {
		c.log.Warn("a pause published in Redis could not be read; ignored", "message", truncate(msg, 80))
		return
	}
	until := now.Add(time.Duration(us) * time.Microsecond)
	c.mu.Lock()
	if until.After(c.paused[name]) {
		c.paused[name] = until
	}
	c.mu.Unlock()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// marshalReplica is a replica's description as kept in Redis.
func marshalReplica(r Replica) (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

// List is the live replicas, as each last announced itself.
func (c *Cluster) List(ctx context.Context) ([]Replica, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	members, err := c.db().ZRangeWithScores(cctx, c.key("replicas"), 0, -1).Result()
	if err = c.result(err); err != nil {
		return nil, err
	}
	out := make([]Replica, 0, len(members))
	for _, m := range members {
		id, _ := m.Member.(string)
		desc, err := c.db().Get(cctx, c.key("replica", id)).Result()
		var r Replica
		if err != nil || json.Unmarshal([]byte(desc), &r) != nil {
			r = Replica{ID: id} // gone between the two reads, or not ours: listed by id
		}
		r.Seen = time.UnixMilli(int64(m.Score)).UTC()
		out = append(out, r)
	}
	return out, nil
}

// Disagreements names the global upstreams whose limit settings differ
// between the replicas listed, sorted.
func Disagreements(list []Replica) []string {
	seen := map[string]string{}
	var out []string
	for _, r := range list {
		for name, digest := range r.Digests {
			if prev, ok := seen[name]; ok && prev != digest && !slices.Contains(out, name) {
				out = append(out, name)
			}
			seen[name] = digest
		}
	}
	slices.Sort(out)
	return out
}

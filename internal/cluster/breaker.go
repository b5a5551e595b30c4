package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// breakerStale is how long a replica's report on a breaker counts: a
// replica that stopped reporting (killed, or cut off from Redis) no longer
// adds its evidence.
const breakerStale = 2 * time.Second

// breakerReport records this replica's word on a global upstream's
// breaker and reads the replicas' verdict. Evidence from more than one
// place opens it for every replica: at least two live replicas whose own
// windows would open a breaker, one of them open already. One replica
// whose calls fail while its peers' succeed opens only its own.
//
// Each closing by the probes starts a new epoch; a report made before the
// replica heard of it (its evidence from before the close) is not counted.
//
// A zone whose replicas all see the upstream healthy (their zone reports,
// zone.go) vetoes the opening: the failures are the other zones' paths.
//
// KEYS: the replicas' reports (a hash), the cluster's open-until (ms), the
// replica probing, the epoch, the zone reports. ARGV: replica id, open
// (0/1), trips (0/1), open for (ms), stale after (ms), channel, message,
// the epoch the replica last heard, zone reports' stale after (ms).
// Returns {open until (0: not open), now, prober, replicas tripping, epoch}.
var breakerReport = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = tonumber(ARGV[5])
local epoch = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
local o, tr = ARGV[2], ARGV[3]
if (tonumber(ARGV[8]) or 0) < epoch then
  o, tr = '0', '0'
end
redis.call('HSET', KEYS[1], ARGV[1], o .. ' ' .. tr .. ' ' .. now)
redis.call('PEXPIRE', KEYS[1], stale * 4)
local tripping, open = 0, false
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local o, tr, ts = string.match(all[i + 1], '^(%d) (%d) (%d+)$')
  if not ts or now - tonumber(ts) > stale then
    redis.call('HDEL', KEYS[1], all[i])
  else
    if tr == '1' then tripping = tripping + 1 end
    if o == '1' then open = true end
  end
end
-- A zone whose replicas all see the upstream healthy vetoes: the others'
-- failures are their zone's path, not the vendor (zone.go).
local veto = false
if tripping >= 2 and open then
  local f, h = {}, {}
  local zs = redis.call('HGETALL', KEYS[5])
  for i = 1, #zs, 2 do
    local z, s, ts = string.match(zs[i + 1], '^(%S*) (%a) (%d+)$')
    if ts and z ~= '' and now - tonumber(ts) <= tonumber(ARGV[9]) then
      f[z], h[z] = f[z] or 0, h[z] or 0
      if s == 'f' then f[z] = f[z] + 1 elseif s == 'h' then h[z] = h[z] + 1 end
    end
  end
  for z, n in pairs(h) do
    if n > 0 and f[z] == 0 then veto = true end
  end
end
local untl = tonumber(redis.call('GET', KEYS[2]) or '')
if not untl and tripping >= 2 and open and not veto then
  untl = now + tonumber(ARGV[4])
  redis.call('SET', KEYS[2], untl, 'PX', tonumber(ARGV[4]) + 60000)
  redis.call('PUBLISH', ARGV[6], ARGV[7])
end
return {untl or 0, now, redis.call('GET', KEYS[3]) or '', tripping, epoch}
`)

// Verdict is what the replicas decided about a global upstream's breaker.
type Verdict struct {
	// OpenUntil, on this replica's clock, is when the cluster's breaker
	// lets a probe through; zero: the cluster's breaker is not open.
	OpenUntil time.Time
	Prober    string // the replica probing for all; "" none
	// Epoch counts the times the probes closed it: a replica that hears
	// a newer one than it knew, and was held open, closes.
	Epoch int64
}

func (u *Upstream) breakerKeys() []string {
	return []string{u.c.key("breaker", u.name, "reports"), u.c.key("breaker", u.name, "open"), u.c.key("breaker", u.name, "probe"), u.c.key("breaker", u.name, "epoch"), u.c.key("zone", u.name)}
}

// Replica is this replica's id.
func (u *Upstream) Replica() string { return u.c.self.ID }

// breakerMessage, published, has the replicas read the breaker at once.
func (u *Upstream) breakerMessage() string { return "breaker " + u.name }

// ReportBreaker tells the replicas this one's breaker state (open, and
// whether its window trips) and returns their verdict; when it opens the
// cluster's breaker, for openFor.
func (u *Upstream) ReportBreaker(ctx context.Context, open, trips bool, openFor time.Duration, epoch int64) (Verdict, error) {
	if !u.c.Up() {
		return Verdict{}, errDown
	}
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	flag := map[bool]string{false: "0", true: "1"}
	res, err := breakerReport.Run(cctx, u.c.db(), u.breakerKeys(), u.c.self.ID, flag[open], flag[trips],
		openFor.Milliseconds(), breakerStale.Milliseconds(), u.c.key("pauses"), u.breakerMessage(), epoch, ZoneStale.Milliseconds()).Slice()
	answered := time.Now()
	if err = u.c.result(err); err != nil {
		return Verdict{}, err
	}
	if len(res) != 5 {
		return Verdict{}, u.c.result(errors.New("unexpected answer to the breaker script"))
	}
	untl, ok1 := res[0].(int64)
	now, ok2 := res[1].(int64)
	prober, ok3 := res[2].(string)
	_, ok4 := res[3].(int64) // the replicas tripping: read by the script alone
	ep, ok5 := res[4].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || now <= 0 {
		return Verdict{}, u.c.result(errors.New("unexpected answer to the breaker script"))
	}
	v := Verdict{Prober: prober, Epoch: ep}
	if untl > 0 {
		v.OpenUntil = u.c.clock.local(time.UnixMilli(now), answered).Add(time.Duration(untl-now) * time.Millisecond)
	}
	return v, nil
}

// ClaimProbe makes this replica the one that probes the vendor for every
// replica, for ttl at most; false when another one is.
func (u *Upstream) ClaimProbe(ctx context.Context, ttl time.Duration) (bool, error) {
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	ok, err := u.c.db().SetNX(cctx, u.breakerKeys()[2], u.c.self.ID, ttl).Result()
	return ok, u.c.result(err)
}

// ProbeAnswered records this replica's probes' verdict for every
// replica: closed, or open again for openFor.
func (u *Upstream) ProbeAnswered(ctx context.Context, closed bool, openFor time.Duration) error {
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	keys := u.breakerKeys()
	pipe := u.c.db().TxPipeline()
	if closed {
		// A new epoch: only what the replicas see from now on opens it
		// again.
		pipe.Del(cctx, keys[0], keys[1])
		pipe.Incr(cctx, keys[3])
	}
	pipe.Del(cctx, keys[2])
	if _, err := pipe.Exec(cctx); err != nil {
		return u.c.result(err)
	}
	if !closed {
		if err := reopenScript.Run(cctx, u.c.db(), keys[1:2], openFor.Milliseconds()).Err(); err != nil {
			return u.c.result(err)
		}
	}
	return u.c.result(u.c.db().Publish(cctx, u.c.key("pauses"), u.breakerMessage()).Err())
}

// reopenScript opens the cluster's breaker again, for ARGV[1] ms from
// Redis's now.
var reopenScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], now + tonumber(ARGV[1]), 'PX', tonumber(ARGV[1]) + 60000)
return now
`)

// OnBreaker has wake told when another replica changes the cluster's
// breaker of this upstream (the last wake given).
func (u *Upstream) OnBreaker(wake func()) {
	u.c.mu.Lock()
	u.c.wake[u.breakerMessage()] = wake
	u.c.mu.Unlock()
}

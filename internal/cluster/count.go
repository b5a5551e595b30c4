package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/usage"
)

// countScript keeps a global upstream's billable calls, one hash per
// period: "total" and each replica's part ("r:" and its id). A period's
// hash that is missing (Redis restarted empty), is not a hash, or whose
// total is not a number starts again from the seed a replica gives: the total it last
// heard or saved. The unchecked adds are made first; then, when asked, one
// call is taken unless either period's total has reached its limit (0:
// none).
//
// KEYS: the day's hash, the month's.
// ARGV: part, take (0/1), detail (0/1), then for each period: add, limit,
// seed, expiry in ms.
// Returns {taken (0/1), day total, month total, [day hash, month hash]}.
var countScript = redis.NewScript(`
local part, take, detail = ARGV[1], ARGV[2] == '1', ARGV[3] == '1'
local tot = {}
for i = 1, 2 do
  local b = 3 + (i - 1) * 4
  local ty = redis.call('TYPE', KEYS[i]).ok
  if ty ~= 'hash' and ty ~= 'none' then
    redis.call('DEL', KEYS[i])
  end
  local cur = tonumber(redis.call('HGET', KEYS[i], 'total'))
  if not cur then
    cur = tonumber(ARGV[b + 3])
    redis.call('HSET', KEYS[i], 'total', cur)
  end
  if not tonumber(redis.call('HGET', KEYS[i], part)) then
    redis.call('HSET', KEYS[i], part, 0)
  end
  local add = tonumber(ARGV[b + 1])
  if add ~= 0 then
    cur = redis.call('HINCRBY', KEYS[i], 'total', add)
    redis.call('HINCRBY', KEYS[i], part, add)
  end
  tot[i] = cur
  redis.call('PEXPIRE', KEYS[i], ARGV[b + 4])
end
local taken = 0
if take then
  local dl, ml = tonumber(ARGV[5]), tonumber(ARGV[9])
  if not ((dl > 0 and tot[1] >= dl) or (ml > 0 and tot[2] >= ml)) then
    taken = 1
    for i = 1, 2 do
      tot[i] = redis.call('HINCRBY', KEYS[i], 'total', 1)
      redis.call('HINCRBY', KEYS[i], part, 1)
    end
  end
end
local out = {taken, tot[1], tot[2]}
if detail then
  out[4] = redis.call('HGETALL', KEYS[1])
  out[5] = redis.call('HGETALL', KEYS[2])
end
return out
`)

// errDown is a count not asked: Redis did not answer the last call, and
// the heartbeat, once a second, finds out when it does again.
var errDown = errors.New("redis: not answering; counted here until the heartbeat finds it back")

// Count implements usage.Shared.
func (u *Upstream) Count(ctx context.Context, q usage.Count) (usage.Counted, error) {
	if !u.c.Up() {
		return usage.Counted{}, errDown
	}
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	expiry := func(p usage.Period) int64 {
		return max(time.Until(p.Ends)+24*time.Hour, time.Hour).Milliseconds()
	}
	flag := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	res, err := countScript.Run(cctx, u.c.db(),
		[]string{u.c.key("usage", u.name, "day", q.Day.Key), u.c.key("usage", u.name, "month", q.Month.Key)},
		"r:"+u.c.self.ID, flag(q.Take), flag(q.Detail),
		q.Day.Add, q.DayLim, q.Day.Seed, expiry(q.Day),
		q.Month.Add, q.MonthLim, q.Month.Seed, expiry(q.Month)).Slice()
	if err = u.c.result(err); err != nil {
		return usage.Counted{}, err
	}
	c, ok := readCounted(res, q.Detail)
	if !ok {
		// Not the script's answer: a proxy or another server in Redis's
		// place. Counted as Redis unreachable, never a panic.
		return usage.Counted{}, u.c.result(errors.New("unexpected answer to the count script"))
	}
	return c, nil
}

// readCounted reads the count script's answer; ok is false when it is not
// one. A field of a hash that is not a count is left out.
func readCounted(res []any, detail bool) (c usage.Counted, ok bool) {
	if len(res) < 3 {
		return c, false
	}
	taken, ok1 := res[0].(int64)
	day, ok2 := res[1].(int64)
	month, ok3 := res[2].(int64)
	if !ok1 || !ok2 || !ok3 || day < 0 || month < 0 {
		return c, false
	}
	c = usage.Counted{Taken: taken == 1, Day: usage.Tally{Billable: day}, Month: usage.Tally{Billable: month}}
	if !detail {
		return c, true
	}
	if len(res) != 5 {
		return c, false
	}
	c.Day.Replicas, c.Month.Replicas = parts(res[3]), parts(res[4])
	return c, true
}

// parts reads the replicas' parts from a hash's fields and values.
func parts(v any) map[string]int64 {
	kv, _ := v.([]any)
	out := map[string]int64{}
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		s, _ := kv[i+1].(string)
		id, ok := strings.CutPrefix(k, "r:")
		n, err := strconv.ParseInt(s, 10, 64)
		if ok && err == nil && n != 0 {
			out[id] = n
		}
	}
	return out
}

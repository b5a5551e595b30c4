package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/endpoint"
)

// Shifted is an operator's shift kept for every replica.
type Shifted struct {
	Upstream string `json:"upstream"`
	endpoint.Shift
}

// shiftsMessage, published on the deployment's channel, tells the
// replicas to read the shifts again at once rather than at the next beat.
const shiftsMessage = "shifts"

// shiftsScript drops the shifts, and the removals, that have ended and
// returns the shifts in force, each as its JSON, and the ids of those an
// operator removed. A shift a replica has that is in neither was lost by
// Redis (restarted empty): that replica keeps it, and puts it back.
// KEYS: the set of shift ids by end (ms), the prefix of a shift's key,
// the set of removed ids by when they are forgotten (ms). ARGV: none.
var shiftsScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local live = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', KEYS[2] .. id)
  if v then
    live[#live + 1] = v
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return {live, redis.call('ZRANGE', KEYS[3], 0, -1)}
`)

// PutShift keeps a shift for every replica until it ends, and tells them.
func (c *Cluster) PutShift(ctx context.Context, s Shifted) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	left := time.Until(s.Until)
	if left <= 0 {
		return nil
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	pipe := c.db().TxPipeline()
	pipe.Set(cctx, c.key("shift", s.ID), b, left)
	pipe.ZAdd(cctx, c.key("shifts"), redis.Z{Score: float64(s.Until.UnixMilli()), Member: s.ID})
	pipe.Publish(cctx, c.key("pauses"), shiftsMessage)
	_, err = pipe.Exec(cctx)
	return c.result(err)
}

// DeleteShift ends a shift for every replica, and tells them.
func (c *Cluster) DeleteShift(ctx context.Context, id string) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	pipe := c.db().TxPipeline()
	pipe.Del(cctx, c.key("shift", id))
	pipe.ZRem(cctx, c.key("shifts"), id)
	// Remembered as removed for as long as a shift can last, so that a
	// replica that has it ends it rather than put it back.
	pipe.ZAdd(cctx, c.key("shifts-removed"), redis.Z{Score: float64(time.Now().Add(endpoint.MaxShift).UnixMilli()), Member: id})
	pipe.Publish(cctx, c.key("pauses"), shiftsMessage)
	_, err := pipe.Exec(cctx)
	return c.result(err)
}

// OnShifts has f told the shifts in force for every replica and the ids
// of those removed, at each heartbeat and at once when a replica changes
// them; never while Redis does not answer (each replica keeps the shifts
// it has).
func (c *Cluster) OnShifts(f func(live []Shifted, removed map[string]bool)) {
	c.mu.Lock()
	c.onShifts = f
	c.mu.Unlock()
}

// readShifts tells the OnShifts func the shifts in force, if there is one.
// A kept shift that cannot be read is logged and left out.
func (c *Cluster) readShifts(ctx context.Context) {
	c.mu.Lock()
	f := c.onShifts
	c.mu.Unlock()
	if f == nil {
		return
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := shiftsScript.Run(cctx, c.db(), []string{c.key("shifts"), c.key("shift", ""), c.key("shifts-removed")}).Slice()
	if c.result(err) != nil {
		return
	}
	if len(res) != 2 {
		_ = c.result(errors.New("unexpected answer to the shifts script"))
		return
	}
	out := []Shifted{}
	for _, v := range strs(res[0]) {
		var s Shifted
		if err := json.Unmarshal([]byte(v), &s); err != nil || s.ID == "" || s.Upstream == "" || s.Until.IsZero() || (s.Zone == "") == (s.Endpoint == "") {
			c.log.Warn("a shift kept in Redis could not be read; ignored", "value", truncate(v, 80))
			continue
		}
		out = append(out, s)
	}
	removed := map[string]bool{}
	for _, id := range strs(res[1]) {
		removed[id] = true
	}
	f(out, removed)
}

// strs is the strings of a script's array answer; anything else is left out.
func strs(v any) []string {
	vs, _ := v.([]any)
	out := make([]string, 0, len(vs))
	for _, x := range vs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

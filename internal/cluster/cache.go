package cluster

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/cache"
)

// Cache is the response cache's level every replica shares
// (cache.Shared; docs/distributed.md, "The cache"): each entry under its
// own key with the entry's time to live, two indexes of the keys (by name,
// for purges by prefix; by expiry, for eviction), their sizes and total,
// so that the level holds at most maxBytes; and a purge published for
// every replica's memory.
func (c *Cluster) Cache(maxBytes int64) cache.Shared { return sharedCache{c, maxBytes} }

type sharedCache struct {
	c        *Cluster
	maxBytes int64
}

// purgeMessage, published with a prefix after it, has every replica purge
// its memory of the keys with that prefix.
const purgeMessage = "cache-purge "

// cacheDrop is the Lua that drops one key from the level and its indexes.
// KEYS: the entries' prefix, the index by name, the index by expiry, the
// sizes, the total.
const cacheDrop = `
local function drop(m)
  local size = tonumber(redis.call('HGET', KEYS[4], m) or '0')
  if size > 0 then redis.call('DECRBY', KEYS[5], size) end
  redis.call('HDEL', KEYS[4], m)
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
  redis.call('DEL', KEYS[1] .. m)
end
`

// cacheSetScript keeps an entry: it first drops the entries that have
// expired (at most 100 a call), and the key's old entry, then the entries
// closest to expiring until the new one fits; an entry larger than the
// whole level is not kept (0). ARGV: the key, the value, the time to live
// (ms), the level's size limit (bytes).
var cacheSetScript = redis.NewScript(cacheDrop + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do drop(m) end
drop(ARGV[1])
local size = string.len(ARGV[1]) + string.len(ARGV[2])
local limit = tonumber(ARGV[4])
if size > limit then return 0 end
for _ = 1, 1000 do
  if tonumber(redis.call('GET', KEYS[5]) or '0') + size <= limit then break end
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)
  if #first == 0 then break end
  drop(first[1])
end
redis.call('SET', KEYS[1] .. ARGV[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], size)
redis.call('INCRBY', KEYS[5], size)
return 1
`)

// cachePurgeScript drops every key with the prefix ARGV[1] and returns how
// many there were.
var cachePurgeScript = redis.NewScript(cacheDrop + `
local p = ARGV[1]
local n = 0
while true do
  local batch = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. p, '+', 'LIMIT', 0, 500)
  local dropped = 0
  for _, m in ipairs(batch) do
    if string.sub(m, 1, string.len(p)) ~= p then break end
    drop(m)
    dropped = dropped + 1
  end
  n = n + dropped
  if dropped < 500 then break end
end
return n
`)

// fillReleaseScript hands back a fill turn, if it is still the caller's.
var fillReleaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

func (s sharedCache) keys() []string {
	return []string{s.c.key("cache", "e", ""), s.c.key("cache", "names"), s.c.key("cache", "expiry"), s.c.key("cache", "sizes"), s.c.key("cache", "bytes")}
}

// Get implements cache.Shared.
func (s sharedCache) Get(key string) ([]byte, error) {
	ctx, cancel := s.c.call(context.Background())
	defer cancel()
	b, err := s.c.db().Get(ctx, s.c.key("cache", "e", key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, s.c.result(nil)
	}
	return b, s.c.result(err)
}

// Set implements cache.Shared.
func (s sharedCache) Set(key string, b []byte, ttl time.Duration) error {
	ctx, cancel := s.c.call(context.Background())
	defer cancel()
	return s.c.result(cacheSetScript.Run(ctx, s.c.db(), s.keys(), key, b, max(1, ttl.Milliseconds()), s.maxBytes).Err())
}

// Purge implements cache.Shared.
func (s sharedCache) Purge(prefix string) (int, error) {
	ctx, cancel := s.c.call(context.Background())
	defer cancel()
	n, err := cachePurgeScript.Run(ctx, s.c.db(), s.keys(), prefix).Int()
	if err = s.c.result(err); err != nil {
		return 0, err
	}
	return n, s.c.result(s.c.db().Publish(ctx, s.c.key("pauses"), purgeMessage+prefix).Err())
}

// Fill implements cache.Shared.
func (s sharedCache) Fill(key string, d time.Duration) (func(), bool, error) {
	ctx, cancel := s.c.call(context.Background())
	defer cancel()
	lock := s.c.key("cache", "fill", key)
	ok, err := s.c.db().SetNX(ctx, lock, s.c.self.ID, max(d, time.Millisecond)).Result()
	if err = s.c.result(err); err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		ctx, cancel := s.c.call(context.Background())
		defer cancel()
		_ = s.c.result(fillReleaseScript.Run(ctx, s.c.db(), []string{lock}, s.c.self.ID).Err())
	}, true, nil
}

// OnCachePurge has f told each prefix another replica purged, and "" (all
// of it) each time Redis answers again: what a purge made while Redis did
// not answer would have removed is not known.
func (c *Cluster) OnCachePurge(f func(prefix string)) { c.forget.Store(&f) }

// heardPurge tells the OnCachePurge func of a published purge.
func (c *Cluster) heardPurge(msg string) bool {
	prefix, ok := strings.CutPrefix(msg, purgeMessage)
	if ok {
		if f := c.forget.Load(); f != nil {
			(*f)(prefix)
		}
	}
	return ok
}

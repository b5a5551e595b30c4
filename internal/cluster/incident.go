package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seawall/seawall/internal/incident"
)

// Incidents are the replicas' incidents, one per outage (incident.Shared;
// docs/distributed.md, "Incidents"). For each upstream Redis keeps the id
// of the incident open and the replicas holding it open, each with the
// time it last said so; the highest severity triggered; and the events
// every replica recorded for it.
func (c *Cluster) Incidents() incident.Shared { return incidents{c} }

type incidents struct{ c *Cluster }

const (
	// incidentHolder: a replica that has not said it holds an incident
	// open for this long (it died) no longer holds it.
	incidentHolder = 10 * time.Second
	// incidentKeep is how long a cluster incident's events and severity
	// are kept after the last replica left it.
	incidentKeep = 7 * 24 * time.Hour
	// incidentEvents bounds the events kept for one incident.
	incidentEvents = 2000
)

// joinScript adds a replica to the upstream's open incident, opening one
// whose id is above the caller's floor (the highest it knows) when none
// is: ids never go back, even when Redis restarted empty. Replicas whose
// word is older than the holder time are dropped first.
// KEYS: the open incident's id, the id counter, the holders (a sorted set
// by ms). ARGV: the replica, the floor, the holder time (ms).
var joinScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
local id = redis.call('GET', KEYS[1])
if not id then
  local floor = tonumber(ARGV[2])
  if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then
    redis.call('SET', KEYS[2], floor)
  end
  id = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], id)
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
return tonumber(id)
`)

// holdScript renews a replica's word that it holds incident ARGV[2] open,
// if that is still the upstream's open incident.
// KEYS: the open incident's id, the holders. ARGV: the replica, the id.
var holdScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 1
`)

// leaveScript takes a replica out of the upstream's open incident and,
// when no live replica holds it any more, closes it: 1 for the replica
// that closed it, which tells of the resolve. An incident already closed,
// or replaced, answers 0.
// KEYS: the open incident's id, the holders. ARGV: the replica, the id,
// the holder time (ms).
var leaveScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`)

// claimScript raises an incident's triggered severity: 1 when ARGV[1] is
// higher than any triggered before. KEYS: the severity. ARGV: the
// severity, how long to keep it (s).
var claimScript = redis.NewScript(`
local sev = tonumber(ARGV[1])
local was = tonumber(redis.call('GET', KEYS[1]) or '-1')
if sev <= was then return 0 end
redis.call('SET', KEYS[1], sev, 'EX', ARGV[2])
return 1
`)

func (s incidents) open(upstream string) string    { return s.c.key("incident", "open", upstream) }
func (s incidents) holders(upstream string) string { return s.c.key("incident", "holders", upstream) }
func (s incidents) of(id int64, what string) string {
	return s.c.key("incident", strconv.FormatInt(id, 10), what)
}

// Join implements incident.Shared.
func (s incidents) Join(ctx context.Context, upstream string, floor int64) (int64, error) {
	cctx, cancel := s.c.call(ctx)
	defer cancel()
	id, err := joinScript.Run(cctx, s.c.db(), []string{s.open(upstream), s.c.key("incident", "next"), s.holders(upstream)},
		s.c.self.ID, floor, incidentHolder.Milliseconds()).Int64()
	return id, s.c.result(err)
}

// Beat implements incident.Shared.
func (s incidents) Beat(ctx context.Context, upstream string, id int64) error {
	cctx, cancel := s.c.call(ctx)
	defer cancel()
	return s.c.result(holdScript.Run(cctx, s.c.db(), []string{s.open(upstream), s.holders(upstream)}, s.c.self.ID, id).Err())
}

// Leave implements incident.Shared.
func (s incidents) Leave(ctx context.Context, upstream string, id int64) (bool, error) {
	cctx, cancel := s.c.call(ctx)
	defer cancel()
	n, err := leaveScript.Run(cctx, s.c.db(), []string{s.open(upstream), s.holders(upstream)}, s.c.self.ID, id, incidentHolder.Milliseconds()).Int()
	return n == 1, s.c.result(err)
}

// Claim implements incident.Shared.
func (s incidents) Claim(ctx context.Context, id int64, sev incident.Severity) (bool, error) {
	cctx, cancel := s.c.call(ctx)
	defer cancel()
	n, err := claimScript.Run(cctx, s.c.db(), []string{s.of(id, "severity")}, int(sev), int(incidentKeep.Seconds())).Int()
	return n == 1, s.c.result(err)
}

// Add implements incident.Shared.
func (s incidents) Add(ctx context.Context, id int64, events []incident.Event) error {
	if len(events) == 0 {
		return nil
	}
	vals := make([]any, 0, len(events))
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		vals = append(vals, b)
	}
	cctx, cancel := s.c.call(ctx)
	defer cancel()
	key := s.of(id, "events")
	pipe := s.c.db().TxPipeline()
	pipe.RPush(cctx, key, vals...)
	pipe.LTrim(cctx, key, -incidentEvents, -1)
	pipe.Expire(cctx, key, incidentKeep)
	_, err := pipe.Exec(cctx)
	return s.c.result(err)
}

// Events implements incident.Shared. An event that cannot be read is
// left out.
func (s incidents) Events(ctx context.Context, id int64) ([]incident.Event, error) {
	cctx, cancel := s.c.call(ctx)
	defer cancel()
	vals, err := s.c.db().LRange(cctx, s.of(id, "events"), 0, -1).Result()
	if err = s.c.result(err); err != nil {
		return nil, err
	}
	out := make([]incident.Event, 0, len(vals))
	for _, v := range vals {
		var e incident.Event
		if json.Unmarshal([]byte(v), &e) == nil {
			out = append(out, e)
		}
	}
	if len(vals) > 0 && len(out) == 0 {
		return nil, errors.New("no event kept in Redis for this incident could be read")
	}
	return out, nil
}

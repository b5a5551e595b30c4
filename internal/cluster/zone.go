package cluster

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a replica's own calls to a global upstream say, in its zone
// (docs/distributed.md, "The sick zone").
const (
	// ZoneFailing: its breaker's window would open the breaker, or its
	// own calls opened it.
	ZoneFailing = "failing"
	// ZoneHealthy: at least min_calls calls in the window, and they would
	// not open it.
	ZoneHealthy = "healthy"
	// ZoneUnknown: too few calls to tell.
	ZoneUnknown = "unknown"
)

// ZoneStale is how long a replica's zone report counts.
const ZoneStale = 2 * time.Second

// zoneReport records a replica's word on an upstream, as its zone sees
// it, and judges the caller's zone: sick (1) when its replicas see the
// upstream failing and none healthy, while another zone's replicas see it
// healthy and none failing; 2 when sick but an operator said it is ready
// (zone-ready). A zone of "" (not configured) is never sick.
// KEYS: the reports (a hash), the override key's prefix. ARGV: replica,
// zone, state (f, h or u), stale after (ms).
// Returns {verdict, "zone failing healthy" for each zone}.
var zoneReport = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 4)
local f, h, zones = {}, {}, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local z, s, ts = string.match(all[i + 1], '^(%S*) (%a) (%d+)$')
  if not ts or now - tonumber(ts) > tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    if not f[z] then f[z], h[z] = 0, 0; zones[#zones + 1] = z end
    if s == 'f' then f[z] = f[z] + 1 elseif s == 'h' then h[z] = h[z] + 1 end
  end
end
local mine, verdict = ARGV[2], 0
if mine ~= '' and (f[mine] or 0) > 0 and (h[mine] or 0) == 0 then
  for _, z in ipairs(zones) do
    if z ~= mine and z ~= '' and h[z] > 0 and f[z] == 0 then verdict = 1 end
  end
end
if verdict == 1 and redis.call('EXISTS', KEYS[2] .. mine) == 1 then verdict = 2 end
local out = {}
for _, z in ipairs(zones) do out[#out + 1] = z .. ' ' .. f[z] .. ' ' .. h[z] end
return {verdict, out}
`)

// ZoneCounts is how many replicas of a zone see an upstream failing, and
// how many healthy.
type ZoneCounts struct {
	Failing int `json:"failing"`
	Healthy int `json:"healthy"`
}

// ZoneVerdict is what the replicas' reports say of this replica's zone.
type ZoneVerdict struct {
	Zone string `json:"zone"`
	// Sick: this zone's replicas see the upstream failing while another
	// zone's see it healthy.
	Sick bool `json:"sick"`
	// Overridden: sick, but an operator said the zone is ready.
	Overridden bool                  `json:"overridden,omitempty"`
	Zones      map[string]ZoneCounts `json:"zones"`
}

// Evidence is the verdict in one line.
func (v ZoneVerdict) Evidence(upstream string) string {
	names := make([]string, 0, len(v.Zones))
	for z := range v.Zones {
		names = append(names, z)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, z := range names {
		c := v.Zones[z]
		name := z
		if name == "" {
			name = "(no zone)"
		}
		parts = append(parts, name+": "+strconv.Itoa(c.Failing)+" failing, "+strconv.Itoa(c.Healthy)+" healthy")
	}
	return upstream + " fails from zone " + v.Zone + " and not from another (replicas by zone: " + strings.Join(parts, "; ") + ")"
}

// ReportZone tells the replicas what this one's own calls to the
// upstream say (ZoneFailing, ZoneHealthy or ZoneUnknown) and returns the
// verdict on this replica's zone.
//
// It asks Redis even while the last call went unanswered: four times a
// second a replica, it is what finds Redis back for the zone verdict,
// sooner than the heartbeat.
func (u *Upstream) ReportZone(ctx context.Context, state string) (ZoneVerdict, error) {
	if u.c.self.Zone == "" {
		// No zone: never sick, and its word counts in no zone's verdict,
		// so it is not sent.
		return ZoneVerdict{}, nil
	}
	cctx, cancel := u.c.call(ctx)
	defer cancel()
	res, err := zoneReport.Run(cctx, u.c.db(), []string{u.breakerKeys()[4], u.c.key("zone-ready", "")},
		u.c.self.ID, u.c.self.Zone, state[:1], ZoneStale.Milliseconds()).Slice()
	if err = u.c.result(err); err != nil {
		return ZoneVerdict{}, err
	}
	verdict, ok := res[0].(int64)
	if len(res) != 2 || !ok {
		return ZoneVerdict{}, u.c.result(errors.New("unexpected answer to the zone script"))
	}
	v := ZoneVerdict{Zone: u.c.self.Zone, Sick: verdict > 0, Overridden: verdict == 2, Zones: map[string]ZoneCounts{}}
	for _, line := range strs(res[1]) {
		f := strings.Fields(line)
		if len(f) == 2 { // the zone "" reads as two fields
			f = append([]string{""}, f...)
		}
		if len(f) != 3 {
			continue
		}
		failing, _ := strconv.Atoi(f[1])
		healthy, _ := strconv.Atoi(f[2])
		v.Zones[f[0]] = ZoneCounts{Failing: failing, Healthy: healthy}
	}
	return v, nil
}

// ZoneReady has the replicas of zone count it ready for d, whatever their
// calls say: an operator's word (seawall cluster zone-ready).
func (c *Cluster) ZoneReady(ctx context.Context, zone string, d time.Duration) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	return c.result(c.db().Set(cctx, c.key("zone-ready", zone), "1", d).Err())
}

package upstream

import (
	"errors"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/cluster"
)

// The verdict a replica acts on: sick only after 2 s of sick verdicts;
// ready while Redis is away; after Redis answers again (restarted empty,
// holding only the reports made since), a zone sick before is unready
// again at the first sick verdict, even if the first one, before the
// other zones reported, said not sick; past that grace, not sick ends it.
func TestZoneAge(t *testing.T) {
	sick, well := cluster.ZoneVerdict{Zone: "a", Sick: true}, cluster.ZoneVerdict{Zone: "a"}
	away := errors.New("redis away")
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var z zoneAge
	for _, step := range []struct {
		at   time.Duration
		v    cluster.ZoneVerdict
		err  error
		sick bool
		why  string
	}{
		{0, sick, nil, false, "the first sick verdict"},
		{time.Second, sick, nil, false, "sick for a second"},
		{2 * time.Second, sick, nil, true, "sick for 2 s"},
		{3 * time.Second, sick, away, false, "Redis away: ready, as alone"},
		{8 * time.Second, well, nil, false, "Redis back, the other zones not yet heard"},
		{8250 * time.Millisecond, sick, nil, true, "the other zones heard: sick before, sick again"},
		{9 * time.Second, well, nil, false, "healed, within 2 s of Redis's return but after a sick verdict"},
		{9250 * time.Millisecond, sick, nil, false, "sick anew (the vendor's own outage, this zone first): 2 s again"},
		{9500 * time.Millisecond, well, nil, false, "the other zones trip too"},
		{12 * time.Second, well, nil, false, "healed, past the grace"},
		{12250 * time.Millisecond, sick, nil, false, "sick anew: 2 s again"},
	} {
		if got := z.judge(step.v, step.err, at(step.at)); got.Sick != step.sick {
			t.Errorf("%s (at %s): sick %v, want %v", step.why, step.at, got.Sick, step.sick)
		}
	}
}

package endpoint

import (
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
)

// defaults is the pool's configuration with every health key at the
// config's default: the one table of them.
func defaults() PoolConfig { return PoolConfigFrom(config.DefaultHealth()) }

// detector is the default detector, changed by set.
func detector(set func(*Config)) Config {
	c := defaults().Detector
	set(&c)
	return c
}

// isolating is the default pool with the isolation lengths given.
func isolating(base, most time.Duration) PoolConfig {
	c := defaults()
	c.BaseIsolation, c.MaxIsolation = base, most
	return c
}

// Trust, item 6: an explicit zero in health.* is kept, not replaced by a
// second table of defaults in this package. Before, failure_floor: 0
// validated and then ran as 5%, and latency_floor: 0 as 50ms; and the
// package's own table disagreed with the config's (base_isolation 30s
// against 10s, probe_share 2% against 1%).
func TestPoolConfigTakesTheConfigAsGiven(t *testing.T) {
	h := config.DefaultHealth()
	h.FailureFloor, h.LatencyFloor, h.MaxIsolated = 0, 0, 0
	c := NewPool("api", "", nil, PoolConfigFrom(h), LogPublisher{}).cfg
	if c.Detector.FailureFloor != 0 || c.Detector.LatencyFloor != 0 || c.Detector.MaxIsolated != 0 {
		t.Errorf("explicit zeros became %v, %v, %v; want them kept", c.Detector.FailureFloor, c.Detector.LatencyFloor, c.Detector.MaxIsolated)
	}
	d := NewPool("api", "", nil, defaults(), LogPublisher{}).cfg
	if d.BaseIsolation != 10*time.Second || d.ProbeShare != 0.01 || d.Detector.FailureFloor != 0.05 || d.Detector.HealthyShare != 1.0/3 {
		t.Errorf("the defaults in force: base isolation %s, probe share %v, failure floor %v, healthy share %v; want the config's 10s, 1%%, 5%% and 1/3",
			d.BaseIsolation, d.ProbeShare, d.Detector.FailureFloor, d.Detector.HealthyShare)
	}
}

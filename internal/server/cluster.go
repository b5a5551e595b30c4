package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/incident"
)

// openCluster links this replica to the others when the config has a
// redis block; nil otherwise. Redis going away and coming back is one log
// line, one event and seawall_redis_up each way.
func openCluster(cfg *config.Config, version string, reg *prometheus.Registry, events incident.Publisher, log *slog.Logger) (*cluster.Cluster, error) {
	if cfg.Redis == nil {
		return nil, nil
	}
	self := cluster.Replica{Zone: cfg.Zone, Version: version, Started: time.Now().UTC(), Digests: limitDigests(cfg)}
	state := func(up bool) {
		if up {
			log.Info("redis answers again: global upstreams pace with the other replicas")
			events.Publish(incident.Event{Type: incident.RedisRestored, Severity: incident.Info, Summary: "Redis answers again: the global limits are shared"})
			return
		}
		how := "each replica paces at its share of the rate"
		if cfg.Redis.OnFailure == config.RedisOnFailureClosed {
			how = "calls to global upstreams are refused (on_failure: closed)"
		}
		log.Warn("redis does not answer: "+how, "timeout", cfg.Redis.Timeout.D().String())
		events.Publish(incident.Event{Type: incident.RedisUnreachable, Severity: incident.Warning, Summary: "Redis does not answer: " + how})
	}
	disagree := func(names []string) {
		if len(names) == 0 {
			log.Info("the live replicas agree on every global upstream's limit again")
			return
		}
		log.Warn("live replicas have different limits for global upstreams: they share one quota and would fight over it", "upstreams", names)
		for _, name := range names {
			events.Publish(incident.Event{Type: incident.ReplicasDisagree, Upstream: name, Severity: incident.Warning,
				Summary: "live replicas have different rate limits for this global upstream: they share one quota; make their configs agree"})
		}
	}
	cl, err := cluster.Open(cfg.Redis, self, log, cluster.Hooks{State: state, Disagree: disagree})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "seawall", Name: "redis_up",
		Help: "1 while Redis answers (the global upstreams' limits are shared), 0 while it does not."},
		func() float64 {
			if cl.Up() {
				return 1
			}
			return 0
		}))
	return cl, nil
}

// limitDigests names each global upstream's limit settings by a digest,
// so that replicas can see they disagree.
func limitDigests(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for name, u := range cfg.Upstreams {
		if !cfg.Global(u) {
			continue
		}
		b, _ := json.Marshal(struct {
			Rate     float64
			Burst    int
			Headroom float64
			Adaptive bool
		}{u.RateLimit.Rate.PerSecond(), u.RateLimit.Burst, u.RateLimit.Headroom, u.RateLimit.Adaptive})
		h := sha256.Sum256(b)
		out[name] = hex.EncodeToString(h[:6])
	}
	return out
}

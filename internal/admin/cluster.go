package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/seawall/seawall/internal/cluster"
)

// ClusterView is GET /admin/cluster: this replica and the live ones that
// share the global upstreams' limits through Redis.
type ClusterView struct {
	// Shared is false without a redis block: this replica is alone.
	Shared bool `json:"shared"`
	// Self is this replica's id.
	Self string `json:"self,omitempty"`
	// RedisUp says whether Redis answered this replica's last call.
	RedisUp bool `json:"redis_up"`
	// Replicas are the live replicas as each last announced itself.
	Replicas []cluster.Replica `json:"replicas"`
	// Error is why the list could not be read (Redis unreachable).
	Error string `json:"error,omitempty"`
	// Disagree names the global upstreams whose limit settings differ
	// between live replicas: they would fight over one quota.
	Disagree []string `json:"disagree,omitempty"`
}

func clusterView(ctx context.Context, cl *cluster.Cluster) ClusterView {
	if cl == nil {
		return ClusterView{Replicas: []cluster.Replica{}}
	}
	v := ClusterView{Shared: true, Self: cl.ID()}
	list, err := cl.List(ctx)
	v.RedisUp = cl.Up()
	if err != nil {
		v.Error = err.Error()
		list = []cluster.Replica{}
	}
	v.Replicas = list
	v.Disagree = cluster.Disagreements(list)
	return v
}

// zoneReadyArgs reads POST /admin/cluster/zone-ready's zone and for
// (default 1h, at most 24h).
func zoneReadyArgs(r *http.Request) (string, time.Duration, error) {
	q := r.URL.Query()
	zone := q.Get("zone")
	if zone == "" || len(zone) > 64 || strings.ContainsAny(zone, " \t\r\n") {
		return "", 0, fmt.Errorf("zone=%q: name the zone (as in its replicas' zone key)", zone)
	}
	d := time.Hour
	if f := q.Get("for"); f != "" {
		var err error
		if d, err = time.ParseDuration(f); err != nil || d <= 0 || d > 24*time.Hour {
			return "", 0, fmt.Errorf("for=%q: want a duration like 30m, at most 24h (default 1h)", f)
		}
	}
	return zone, d, nil
}

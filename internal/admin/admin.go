// Package admin serves Seawall's operator API on its own listener:
// Prometheus metrics, health, the live state of each upstream, the cache
// purge, manual endpoint shifts, the jobs and dead letters of the durable queue, and Go's profiles.
package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof" //nolint:gosec // served on the admin listener only, behind its token
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/upstream"
)

// Parts are what the admin API serves, built before it.
type Parts struct {
	// Upstreams are the upstreams, their cache and usage, and the metrics.
	Upstreams *upstream.Set
	// Jobs is the job store; nil when no route is async or deferred.
	Jobs jobs.Store
	// Incidents, when set, serves the incidents and events.
	Incidents *incident.Recorder
	// Token is what every endpoint but /healthz and /readyz requires, as
	// "Authorization: Bearer <token>"; an empty token is a programming error.
	Token string
	// Reload, when set, reloads the config and describes what it did,
	// with a "result" of "applied" or "rejected".
	Reload func() any
	// Cluster, when set, lists the live replicas that share the global
	// upstreams' limits.
	Cluster *cluster.Cluster
	// Board, when set, serves the dashboard at / (NewBoard; its Run keeps
	// it current). Without it, the listener serves the API alone.
	Board *Board
}

// Handler returns the admin API.
func Handler(parts Parts) http.Handler {
	ups, token, reload, inc := parts.Upstreams, parts.Token, parts.Reload, parts.Incidents
	if token == "" {
		panic("admin: the admin API needs a token")
	}
	g := newGuard(token)
	if parts.Board != nil {
		g = parts.Board.guard
	}
	authorized := func(next http.Handler) http.Handler { return g.wrap(next) }
	mux := http.NewServeMux()
	if parts.Board != nil {
		registerDashboard(mux, g, parts.Board)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	// Ready when the job store (if any) answers: a load balancer or
	// orchestrator sends async traffic elsewhere while it does not. No
	// token, like /healthz; the cause goes to the log, not the answer.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if s := parts.Jobs; s != nil {
			if err := s.Ping(r.Context()); err != nil {
				why := "job store unavailable"
				if errors.Is(err, jobs.ErrCannotWrite) {
					why = "job store cannot write"
				}
				ups.Logger().Warn("not ready: "+why, "error", err.Error())
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(why + "\n"))
				return
			}
		}
		if ok, why := ups.ZoneHealth(); !ok {
			// This replica's zone sees a vendor failing that other zones
			// see healthy: the load balancer should send the app's calls
			// to another zone (docs/distributed.md, "The sick zone"). The
			// evidence is counts of replicas, no secret.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("zone unready: " + strings.Join(why, "\n") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", authorized(promhttp.HandlerFor(ups.Metrics().Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})))
	mux.Handle("GET /admin/upstreams", authorized(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, ups.Status())
	})))
	mux.Handle("GET /admin/usage", authorized(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, ups.UsageReports())
	})))
	mux.Handle("GET /admin/shifts", authorized(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, ups.Shifts())
	})))
	mux.Handle("POST /admin/shifts", authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var d time.Duration
		if f := q.Get("for"); f != "" {
			var err error
			if d, err = time.ParseDuration(f); err != nil || d <= 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("for=%q: want a duration like 30m (default 1h, at most 72h)", f))
				return
			}
		}
		s, err := ups.AddShift(q.Get("upstream"), q.Get("zone"), q.Get("endpoint"), d)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, s)
	})))
	mux.Handle("DELETE /admin/shifts/{id}", authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ups.RemoveShift(r.PathValue("id")); err != nil {
			status := http.StatusServiceUnavailable // removed here, not on the other replicas
			if errors.Is(err, upstream.ErrUnknownShift) {
				status = http.StatusNotFound
			}
			writeError(w, status, err)
			return
		}
		writeJSON(w, map[string]string{"removed": r.PathValue("id")})
	})))
	mux.Handle("POST /admin/cache/purge", authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, prefix := r.URL.Query().Get("upstream"), r.URL.Query().Get("path")
		n, err := ups.PurgeCache(name, prefix)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		ups.Events().Publish(incident.Event{Type: incident.CachePurged, Upstream: name, Severity: incident.Info,
			Summary: fmt.Sprintf("cache purged by an operator: %d entries under %q", n, prefix), Evidence: map[string]any{"purged": n, "path": prefix}})
		writeJSON(w, map[string]int{"purged": n})
	})))
	if reload != nil {
		mux.Handle("POST /admin/reload", authorized(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, reload())
		})))
	}
	jobsAPI{parts.Jobs, ups.CredentialHeader, ups.Events()}.register(mux, authorized)
	if inc != nil {
		incidentsAPI{inc}.register(mux, authorized)
	}
	mux.Handle("GET /admin/cluster", authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, clusterView(r.Context(), parts.Cluster))
	})))
	mux.Handle("POST /admin/cluster/zone-ready", authorized(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zone, d, err := zoneReadyArgs(r)
		switch {
		case err != nil:
			writeError(w, http.StatusBadRequest, err)
		case parts.Cluster == nil:
			writeError(w, http.StatusConflict, errors.New("this Seawall shares nothing (no redis block): its zone is never unready"))
		default:
			if err := parts.Cluster.ZoneReady(r.Context(), zone, d); err != nil {
				writeError(w, http.StatusServiceUnavailable, fmt.Errorf("redis: %w", err))
				return
			}
			writeJSON(w, map[string]any{"zone": zone, "ready_for_seconds": d.Seconds()})
		}
	})))
	// Go's profiles (CPU, heap, allocations, goroutines), for finding where
	// a busy Seawall spends its time: docs/operations.md.
	mux.Handle("GET /debug/pprof/", authorized(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", authorized(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", authorized(http.HandlerFunc(pprof.Trace)))
	return mux
}

// bearer is the credential of an "Authorization: Bearer <token>" header;
// the scheme is matched case-insensitively (RFC 9110 §11.1).
func bearer(h string) []byte {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil
	}
	return []byte(strings.TrimLeft(cred, " "))
}

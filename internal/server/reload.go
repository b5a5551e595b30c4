package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/jobs"
	"github.com/seawall/seawall/internal/proxy"
)

// Reloaded is what a config reload did.
type Reloaded struct {
	// Result is "applied" or "rejected".
	Result string `json:"result"`
	// Problems are why a reload was rejected, as "file:line path: message".
	Problems []string `json:"problems,omitempty"`
	// Warnings are what the applied config allows that would surprise an
	// operator, in the same form.
	Warnings []string `json:"warnings,omitempty"`
	proxy.Applied
	// NeedRestart are keys whose new values apply at the next start only.
	NeedRestart []string `json:"need_restart,omitempty"`
	// StillQueued counts, for each removed upstream, its unfinished jobs:
	// they stay queued until it is configured again.
	StillQueued map[string]int `json:"still_queued,omitempty"`
}

// Reload results, the label of seawall_config_reloads_total.
const (
	ReloadApplied  = "applied"
	ReloadRejected = "rejected"
)

// reloadMetrics counts reloads by result.
func reloadMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "seawall_config_reloads_total",
		Help: "Config reloads by result: applied, or rejected (the running config stays).",
	}, []string{"result"})
	c.WithLabelValues(ReloadApplied)
	c.WithLabelValues(ReloadRejected)
	reg.MustRegister(c)
	return c
}

// Reload reads the config file again. A valid one replaces the running
// upstreams and limits at once (proxy.Apply); an invalid one, or one
// that changes what cannot change while running, is rejected, logged
// with its problems, and the running config stays. One reload runs at
// a time.
func (s *Server) Reload() Reloaded {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	out := s.reload()
	s.reloads.WithLabelValues(out.Result).Inc()
	if out.Result == ReloadRejected {
		s.log.Error("config reload rejected; the running config stays", "file", s.ConfigPath, "problems", out.Problems)
		s.Incidents.Publish(incident.Event{Type: incident.ConfigRejected, Severity: incident.Warning,
			Summary:  fmt.Sprintf("config reload rejected; the running config stays: %s", strings.Join(out.Problems, "; ")),
			Evidence: map[string]any{"file": s.ConfigPath, "problems": out.Problems}})
		return out
	}
	s.Incidents.Publish(incident.Event{Type: incident.ConfigReloaded, Severity: incident.Info,
		Summary:  fmt.Sprintf("config reloaded: added %v, changed %v, removed %v", out.Added, out.Changed, out.Removed),
		Evidence: map[string]any{"file": s.ConfigPath, "added": out.Added, "changed": out.Changed, "removed": out.Removed}})
	s.log.Info("config reloaded", "file", s.ConfigPath, "added", out.Added, "changed", out.Changed, "removed", out.Removed, "kept", out.Kept)
	for _, w := range out.Warnings {
		s.log.Warn("config warning", "warning", w)
	}
	if len(out.NeedRestart) > 0 {
		s.log.Warn("config keys changed that apply at the next start only", "keys", out.NeedRestart)
	}
	for name, n := range out.StillQueued {
		s.log.Warn("upstream removed; its unfinished jobs stay queued until it is configured again", "upstream", name, "jobs", n)
	}
	return out
}

func (s *Server) reload() Reloaded {
	rejected := func(problems ...string) Reloaded { return Reloaded{Result: ReloadRejected, Problems: problems} }
	if s.ConfigPath == "" {
		return rejected("this Seawall was not started from a config file")
	}
	cfg, err := config.LoadFile(s.ConfigPath)
	var ps config.Problems
	switch {
	case errors.As(err, &ps):
		out := rejected()
		for _, p := range ps {
			if p.Warning { // said beside the errors; not why it was rejected
				out.Warnings = append(out.Warnings, p.String())
				continue
			}
			out.Problems = append(out.Problems, p.String())
		}
		return out
	case err != nil:
		return rejected(err.Error())
	}
	var refused []string
	for _, f := range []struct {
		key       string
		was, want string
	}{
		{"listen", s.started.Listen, cfg.Listen},
		{"admin.listen", s.started.Admin.Listen, cfg.Admin.Listen},
		{"jobs.store", s.started.Jobs.Store, cfg.Jobs.Store},
		{"data_dir", s.started.DataDir, cfg.DataDir},
	} {
		if f.was != f.want {
			refused = append(refused, fmt.Sprintf("%s: %s: changing it needs a restart (running with %q, the file says %q)", s.ConfigPath, f.key, f.was, f.want))
		}
	}
	if cfg.UsesAsync() && s.jobs == nil {
		refused = append(refused, s.ConfigPath+": an async or deferred route needs the job store, which opens at start: restart to add the first one")
	}
	if len(refused) > 0 {
		return rejected(refused...)
	}
	if s.jobs != nil {
		for name, u := range cfg.Upstreams {
			if err := s.jobs.AddQueue(name, u.JobConcurrency); err != nil {
				return rejected(err.Error())
			}
		}
	}
	out := Reloaded{Result: ReloadApplied, Applied: s.Proxy.Apply(cfg), NeedRestart: needRestart(s.started, cfg)}
	for _, w := range cfg.Warnings {
		out.Warnings = append(out.Warnings, w.String())
	}
	if len(out.Removed) > 0 && s.jobs != nil {
		out.StillQueued = s.unfinished(out.Removed)
	}
	return out
}

// needRestart lists the keys whose changes apply at the next start only.
func needRestart(was, now *config.Config) []string {
	// What Apply takes from jobs is left out of the comparison.
	wj, nj := was.Jobs, now.Jobs
	wj.MaxResult, nj.MaxResult = 0, 0
	wj.Callbacks.AllowedHosts, nj.Callbacks.AllowedHosts = nil, nil
	var keys []string
	for key, same := range map[string]bool{
		"admin.token":    reflect.DeepEqual(was.Admin.Token, now.Admin.Token),
		"log":            was.Log == now.Log,
		"jobs":           reflect.DeepEqual(wj, nj),
		"cache":          was.Cache == now.Cache,
		"redis":          reflect.DeepEqual(was.Redis, now.Redis),
		"shutdown_grace": was.ShutdownGrace == now.ShutdownGrace,
		"h2c":            was.H2C == now.H2C,
		"engine":         was.Engine == now.Engine,
	} {
		if !same {
			keys = append(keys, key)
		}
	}
	for name, u := range now.Upstreams {
		if w := was.Upstreams[name]; w != nil && w.JobConcurrency != u.JobConcurrency {
			keys = append(keys, "upstreams."+name+".job_concurrency")
		}
	}
	slices.Sort(keys)
	return keys
}

// unfinished counts the unfinished jobs of the named upstreams.
func (s *Server) unfinished(names []string) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := s.jobs.Counts(ctx)
	if err != nil {
		s.log.Warn("could not count the jobs of removed upstreams", slog.String("error", err.Error()))
		return nil
	}
	out := map[string]int{}
	for _, c := range counts {
		if slices.Contains(names, c.Upstream) && c.State != jobs.Succeeded && c.State != jobs.Dead && c.State != jobs.Canceled {
			out[c.Upstream] += c.N
		}
	}
	return out
}

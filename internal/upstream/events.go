package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/seawall/seawall/internal/incident"

	"github.com/seawall/seawall/internal/breaker"
	"github.com/seawall/seawall/internal/ratelimit"
)

// breakerChanged counts and logs a breaker transition, once, with the
// figures that caused it.
func (u *Upstream) breakerChanged(tr breaker.Transition) {
	if tr.From == tr.To {
		u.M.breakerState(tr.To)
		return
	}
	u.M.breakerChanged(tr.To)
	level := slog.LevelInfo
	if tr.To == breaker.Open {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("from", tr.From.String()),
		slog.String("to", tr.To.String()),
	}
	if tr.Calls > 0 {
		attrs = append(attrs, slog.Int("calls", tr.Calls), slog.Int("failures", tr.Failures), slog.Int("slow_calls", tr.Slow))
	}
	if tr.OpenFor > 0 {
		attrs = append(attrs, slog.Float64("open_for_seconds", tr.OpenFor.Seconds()))
	}
	u.Log.LogAttrs(context.Background(), level, "breaker "+tr.To.String(), attrs...)
	u.events.Publish(u.breakerEvent(tr))
}

// breakerEvent is a transition as an incident event, with its evidence.
func (u *Upstream) breakerEvent(tr breaker.Transition) incident.Event {
	b := u.Cfg.Breaker
	e := incident.Event{Upstream: u.Name, Severity: incident.Info, Evidence: map[string]any{"from": tr.From.String(), "to": tr.To.String()}}
	if tr.Calls > 0 {
		e.Evidence["calls"], e.Evidence["failures"], e.Evidence["slow_calls"] = tr.Calls, tr.Failures, tr.Slow
	}
	if tr.Shared {
		e.Evidence["decided_by"] = "replicas" // docs/distributed.md#the-breaker
	}
	switch tr.To {
	case breaker.Open:
		e.Type, e.Severity = incident.BreakerOpened, incident.Error
		e.Evidence["open_for_seconds"] = tr.OpenFor.Seconds()
		switch {
		case tr.Shared:
			e.Summary = "breaker opened: the vendor fails the calls of two or more replicas; held open until one of them has probed it"
		case tr.From == breaker.HalfOpen:
			e.Summary = fmt.Sprintf("breaker opened again: %d of %d probes failed; open for %s", tr.Failures, tr.Calls, tr.OpenFor)
		case tr.Calls > 0 && tr.Failures == 0 && tr.Slow > 0:
			e.Summary = fmt.Sprintf("breaker opened — %d of %d calls slower than %s in %s (%.0f%%, threshold %.0f%%); open for %s",
				tr.Slow, tr.Calls, b.SlowCallDuration.D(), b.Window.D(), 100*float64(tr.Slow)/float64(tr.Calls), b.SlowCallRate, tr.OpenFor)
		case tr.Calls > 0:
			e.Summary = fmt.Sprintf("breaker opened — %d of %d calls failed in %s (%.0f%%, threshold %.0f%%); open for %s",
				tr.Failures, tr.Calls, b.Window.D(), 100*float64(tr.Failures)/float64(tr.Calls), b.FailureRate, tr.OpenFor)
		default:
			e.Summary = fmt.Sprintf("breaker opened; open for %s", tr.OpenFor)
		}
	case breaker.HalfOpen:
		e.Type, e.Summary = incident.BreakerHalfOpen, fmt.Sprintf("breaker half-open: letting %d probe calls through", b.HalfOpenCalls)
	default:
		e.Type, e.Summary = incident.BreakerClosed, "breaker closed"
		if tr.Shared {
			e.Summary = "breaker closed: another replica's probes succeeded"
		}
		if tr.Calls > 0 {
			e.Summary = fmt.Sprintf("breaker closed: %d of %d probes succeeded", tr.Calls-tr.Failures, tr.Calls)
		}
	}
	return e
}

// limiterEvent counts and logs a pause or a change of the adaptive rate.
func (u *Upstream) limiterEvent(e ratelimit.Event) {
	switch e.Kind {
	case "paused":
		u.M.pauses.Inc()
		attrs := []slog.Attr{slog.String("reason", e.Reason), slog.Float64("pause_seconds", e.Pause.Seconds())}
		if e.Status != 0 {
			attrs = append(attrs, slog.Int("status", e.Status))
		}
		u.Log.LogAttrs(context.Background(), slog.LevelWarn, "upstream paused", attrs...)
		ev := incident.Event{Type: incident.UpstreamPaused, Upstream: u.Name, Severity: incident.Warning, Pause: e.Pause,
			Summary:  fmt.Sprintf("paused for %s (%s)", e.Pause.Round(time.Millisecond), e.Reason),
			Evidence: map[string]any{"reason": e.Reason, "pause_seconds": e.Pause.Seconds()}}
		if e.Status != 0 {
			ev.Summary = fmt.Sprintf("paused for %s: the vendor answered %d (%s)", e.Pause.Round(time.Millisecond), e.Status, e.Reason)
			ev.Evidence["status"] = e.Status
		}
		u.events.Publish(ev)
	case "rate":
		u.M.rateChanges.Inc()
		u.Log.LogAttrs(context.Background(), slog.LevelInfo, "rate adapted", slog.String("reason", e.Reason),
			slog.Float64("from_per_second", e.From), slog.Float64("to_per_second", e.To))
	}
}

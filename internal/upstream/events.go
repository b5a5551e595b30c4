package upstream

import (
	"context"
	"log/slog"

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
	case "rate":
		u.M.rateChanges.Inc()
		u.Log.LogAttrs(context.Background(), slog.LevelInfo, "rate adapted", slog.String("reason", e.Reason),
			slog.Float64("from_per_second", e.From), slog.Float64("to_per_second", e.To))
	}
}

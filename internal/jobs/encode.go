package jobs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
)

func decodeArgs(b []byte, d *Delivery) error { return json.Unmarshal(b, d) }

// discardLogger silences River's own logs; Seawall logs job outcomes itself.
// engineLogger is the queue engine's logger: Seawall's, at warn and
// above, marked as the engine's; or none.
func engineLogger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return discardLogger()
	}
	return slog.New(atLeast{log.Handler(), slog.LevelWarn}).With(slog.String("component", "queue"))
}

// atLeast passes on records of level or above.
type atLeast struct {
	slog.Handler
	level slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(a []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(a), h.level}
}
func (h atLeast) WithGroup(n string) slog.Handler { return atLeast{h.Handler.WithGroup(n), h.level} }

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

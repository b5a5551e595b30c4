package jobs

import (
	"encoding/json"
	"io"
	"log/slog"
)

func decodeArgs(b []byte, d *Delivery) error { return json.Unmarshal(b, d) }

// discardLogger silences River's own logs; Seawall logs job outcomes itself.
func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

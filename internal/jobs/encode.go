package jobs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
)

// storedArgs is a Delivery as River keeps it in a job row's args: the
// two fields River's unique keys are made of, and the whole delivery's
// JSON as one string. On PostgreSQL River indexes args with GIN
// (jsonb_ops), which makes an index entry of every key and every scalar
// value: a delivery's own fields and each of its headers cost an entry
// apiece, a string one entry whatever its length. Kept as one string, a
// job costs the index a handful of entries instead of twenty or more (the
// figures are in docs/jobs.md). The unique keys are made as from a
// delivery written whole, so a key still finds jobs stored before.
type storedArgs struct {
	IdempotencyKey string `json:"idempotency_key,omitempty" river:"unique"`
	Scope          string `json:"scope,omitempty" river:"unique"`
	// Whole is the delivery's JSON; empty in a job read in the earlier
	// form.
	Whole string `json:"delivery"`
	// delivery is the delivery itself; it is not stored.
	delivery Delivery
}

// Kind implements river.JobArgs: a delivery's, whichever form it is in.
func (storedArgs) Kind() string { return Delivery{}.Kind() }

// storedFrom is d in the form River keeps. There is no MarshalJSON: with one,
// encoding/json would scan its output again to compact it, which cost an
// enqueue more than the whole encoding did before.
func storedFrom(d Delivery) (storedArgs, error) {
	whole, err := json.Marshal(d)
	return storedArgs{IdempotencyKey: d.IdempotencyKey, Scope: d.Scope, Whole: string(whole), delivery: d}, err
}

// UnmarshalJSON reads either form: the one above, or a delivery's own
// fields at the top of args, as jobs were stored before it.
func (a *storedArgs) UnmarshalJSON(b []byte) error {
	var f struct {
		Whole *string `json:"delivery"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	src, whole := b, ""
	if f.Whole != nil {
		src, whole = []byte(*f.Whole), *f.Whole
	}
	var d Delivery
	if err := json.Unmarshal(src, &d); err != nil {
		return err
	}
	*a = storedArgs{IdempotencyKey: d.IdempotencyKey, Scope: d.Scope, Whole: whole, delivery: d}
	return nil
}

// decodeArgs reads a delivery from a job row's args.
func decodeArgs(b []byte, d *Delivery) error {
	var a storedArgs
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*d = a.delivery
	return nil
}

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

package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/seawall/seawall/internal/clock"
	"github.com/seawall/seawall/internal/tracing"
	"github.com/seawall/seawall/internal/upstream"
)

// UpstreamDeliverer delivers jobs through the upstream runtime the
// app-facing handler calls too: the upstream's pause gate, its limiter
// (behind interactive calls), its breaker and an endpoint of its pool,
// under the set's limits in force; an unsafe job's answer invalidates
// what the set's response cache holds, as the handler's does.
type UpstreamDeliverer struct {
	Upstreams *upstream.Set
	Log       *slog.Logger
}

// Deliver implements Deliverer: one delivery attempt. A refusal by the
// upstream's gates defers the job without spending an attempt.
func (ud *UpstreamDeliverer) Deliver(ctx context.Context, id int64, attempt int, d Delivery) (*Result, error) {
	rid := cmp.Or(d.RequestID, upstream.NewRequestID())
	start := time.Now()
	res, err := ud.deliver(ctx, id, rid, d)
	outcome, level := "succeeded", slog.LevelInfo
	var wait *WaitError
	switch {
	case errors.As(err, &wait):
		outcome = "waited"
	case err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		outcome = "interrupted" // shutting down: requeued, no attempt spent
	case err != nil:
		outcome, level = "failed", slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.Int64("job", id), slog.Int("attempt", attempt), slog.String("request_id", rid),
		slog.String("upstream", d.Upstream), slog.String("method", d.Method), slog.String("path", upstream.Truncate(strings.SplitN(d.Path, "?", 2)[0], 512)),
		slog.String("outcome", outcome), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if res != nil {
		attrs = append(attrs, slog.Int("status", res.Status))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	ud.Log.LogAttrs(ctx, level, "delivery", attrs...)
	return res, err
}

// deliver is one delivery attempt of job id, carrying request id rid.
func (ud *UpstreamDeliverer) deliver(ctx context.Context, id int64, rid string, d Delivery) (res *Result, err error) {
	if tracing.On() {
		var span trace.Span
		ctx, span = tracing.StartDelivery(ctx, d.Header, d.Upstream, id)
		defer func() {
			status := 0
			if res != nil {
				status = res.Status
			}
			tracing.EndDelivery(span, status, err)
		}()
	}
	u := ud.Upstreams.Get(d.Upstream)
	if u == nil {
		// Removed by a reload: the job waits, spending no attempt, until
		// the upstream is configured again (or its max_age passes).
		return nil, &WaitError{After: removedUpstreamWait}
	}
	path, query, _ := strings.Cut(d.Path, "?")
	target := u.Target(path, query)
	req, err := http.NewRequestWithContext(ctx, d.Method, target.String(), http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header(d.Header).Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Idempotency-Key", d.deliveryKey(id))
	c := &upstream.Call{Upstream: u, Target: target, Path: path, Query: query, RequestID: rid, Client: ctx, Background: true}
	if u.KeyHeader != "" {
		c.Tenant = req.Header.Get(u.KeyHeader)
	}
	c.Route = u.Match(req, path)
	u.PrepareOutbound(req.Header, c.RequestID)
	actx := clock.WithDeadline(ctx, time.Now().Add(c.Route.Overall)) // the connection keeps it: no timer per delivery
	defer actx.Stop()
	resp, err := u.Attempt(req.WithContext(actx), c, bodyOrNil(d.Body), 1)
	var gate upstream.GateError
	if errors.As(err, &gate) {
		after, _ := upstream.RetryAfter(gate.Unwrap())
		return nil, &WaitError{After: max(after, 50*time.Millisecond)}
	}
	if errors.Is(err, upstream.ErrOverloaded) {
		return nil, &WaitError{After: time.Second} // Seawall's trouble: no attempt spent
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	lim := ud.Upstreams.Limits()
	maxResult := lim.MaxResult
	res = &Result{Status: resp.StatusCode}
	if d.Deferred {
		res.Header = make(http.Header, len(resp.Header))
		upstream.CopyHeader(res.Header, resp.Header, upstream.NotRelayed)
		res.Body, err = io.ReadAll(io.LimitReader(resp.Body, maxResult+1))
		if err != nil {
			return nil, fmt.Errorf("reading the upstream's answer: %w", err)
		}
		if int64(len(res.Body)) > maxResult {
			res.Body, res.Truncated = res.Body[:maxResult], true
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, lim.MaxResponse))
	ud.Upstreams.InvalidateAfter(u, d.Method, path, resp.StatusCode, resp.Header)
	if c.Route.Retry.RetryableStatus(resp.StatusCode) || resp.StatusCode >= 500 {
		return res, fmt.Errorf("upstream answered %d", resp.StatusCode)
	}
	return res, nil
}

// removedUpstreamWait is how long a job of an upstream removed from the
// config waits before it looks again.
const removedUpstreamWait = 30 * time.Second

// bodyOrNil gives attempt a replayable body, or none.
func bodyOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

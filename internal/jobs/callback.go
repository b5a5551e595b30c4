package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/tracing"
)

// callbackQueue is the queue callbacks wait in, apart from every upstream's.
// Upstream names cannot clash with it: config reserves the "seawall" prefix.
const callbackQueue = "seawall_callbacks"

// callbackArgs is a callback still to send for a finished job. The job is
// read when the callback is sent, so the callback carries its final state.
type callbackArgs struct {
	JobID int64 `json:"job_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (callbackArgs) Kind() string { return "seawall.callback" }

// finished queues the callback of a job that has just ended, if it asked
// for one. It runs before the job's own state is written; were the process
// to die in between, the job would run again and queue its callback again,
// which the unique job id folds into one.
func (s *riverStore[TTx]) finished(id int64, d Delivery) error {
	if d.Callback == "" || s.cfg.Notifier == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.client.Insert(ctx, callbackArgs{JobID: id}, &river.InsertOpts{
		Queue:       callbackQueue,
		MaxAttempts: cmp.Or(s.cfg.CallbackAttempts, 10),
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	})
	if err != nil {
		return fmt.Errorf("queueing the callback of job %d: %w", id, err)
	}
	return nil
}

// callbackWorker sends callbacks through the Notifier, retried on the
// store's schedule.
type callbackWorker[TTx any] struct {
	river.WorkerDefaults[callbackArgs]
	s *riverStore[TTx]
}

// Timeout bounds one callback attempt; validate warns of a
// jobs.callbacks.timeout longer than it.
func (w *callbackWorker[TTx]) Timeout(*river.Job[callbackArgs]) time.Duration {
	return config.MaxCallbackTimeout
}

func (w *callbackWorker[TTx]) Work(ctx context.Context, cb *river.Job[callbackArgs]) error {
	j, err := w.s.Get(ctx, cb.Args.JobID)
	if errors.Is(err, ErrNotFound) {
		return river.JobCancel(fmt.Errorf("job %d is gone", cb.Args.JobID))
	}
	if err != nil {
		return err
	}
	if !j.Finished() {
		// Queued just before the job's final state is written: wait for it.
		return river.JobSnooze(100 * time.Millisecond)
	}
	if tracing.On() {
		var span trace.Span
		ctx, span = tracing.StartCallback(ctx, j.Delivery.Header, j.Delivery.Upstream, j.ID)
		defer span.End()
	}
	if err := w.s.cfg.Notifier.Notify(ctx, j); err != nil {
		outcome := "failed"
		if cb.Attempt >= cb.MaxAttempts {
			outcome = "dead"
		}
		w.s.m.callbacks.WithLabelValues(outcome).Inc()
		return err
	}
	w.s.m.callbacks.WithLabelValues("delivered").Inc()
	return nil
}

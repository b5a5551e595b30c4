package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/routine"
)

// maxBatch bounds how many enqueues share one transaction.
const maxBatch = 256

// ErrStopped is returned by an enqueue after the store has stopped.
var ErrStopped = errors.New("job store stopped")

// ErrOutcomeUnknown is returned when the connection to the store broke
// after an enqueue's statement or its COMMIT was sent: the job may have
// been accepted all the same, so the app is told to resend it with the
// same Idempotency-Key rather than that it was not accepted.
var ErrOutcomeUnknown = errors.New("the job store's answer was lost after the write was sent")

// ErrStoreTimeout is returned when the store did not confirm an enqueue
// (or answer a read) within Config.EnqueueTimeout. An enqueue so refused
// may still have been committed: only an Idempotency-Key makes resending
// it safe.
var ErrStoreTimeout = errors.New("job store did not answer in time")

// inserted is one enqueue's outcome.
type inserted struct {
	job      Job
	existing bool
	err      error
}

type insertReq struct {
	ctx  context.Context // the enqueue's deadline
	d    Delivery
	done chan inserted // buffered: the batcher never waits on a caller gone
}

// batcher is group commit: one goroutine writes every enqueue that arrives
// while the previous transaction is committing in a single transaction,
// so under load many requests share one fsync, and a lone request still
// goes at once. Every enqueue carries a deadline: its caller stops
// waiting then, and a transaction lasts no longer than the latest
// deadline of its requests, so a stuck store holds no one past theirs,
// and requests whose callers have gone are not written.
type batcher struct {
	insert func(context.Context, []Delivery) ([]inserted, error)
	in     chan *insertReq
	mu     sync.RWMutex // held for reading while sending on in
	closed bool
	done   chan struct{}
}

func newBatcher(g *routine.Group, insert func(context.Context, []Delivery) ([]inserted, error)) *batcher {
	b := &batcher{insert: insert, in: make(chan *insertReq, maxBatch), done: make(chan struct{})}
	g.Go("enqueue batcher", b.run)
	return b
}

// enqueue waits until d is committed, has failed to be, or ctx ends.
func (b *batcher) enqueue(ctx context.Context, d Delivery) (Job, bool, error) {
	r := &insertReq{ctx: ctx, d: d, done: make(chan inserted, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return Job{}, false, ErrStopped
	}
	select {
	case b.in <- r:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return Job{}, false, timeoutErr(ctx)
	}
	select {
	case res := <-r.done:
		return res.job, res.existing, res.err
	case <-ctx.Done():
		return Job{}, false, timeoutErr(ctx)
	}
}

// timeoutErr says why an enqueue stopped waiting.
func timeoutErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrStoreTimeout
	}
	return ctx.Err()
}

// close writes what is waiting and stops.
func (b *batcher) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	<-b.done
}

func (b *batcher) run() {
	defer close(b.done)
	var held []*insertReq
	var lastWrite time.Time
	for first := range b.in {
		batch := []*insertReq{first}
		keys := map[string]bool{}
		keyed := func(r *insertReq) bool {
			if r.d.IdempotencyKey == "" {
				return false
			}
			k := r.d.Upstream + "\x00" + r.d.Scope + "\x00" + r.d.IdempotencyKey
			seen := keys[k]
			keys[k] = true
			return seen
		}
		keyed(first)
		add := func(r *insertReq) {
			// One transaction may not hold one key twice: the second
			// goes after, and finds the first's job.
			if keyed(r) {
				held = append(held, r)
			} else {
				batch = append(batch, r)
			}
		}
		open := true
	collect:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-b.in:
				if !ok {
					open = false
					break collect
				}
				add(r)
			default:
				break collect
			}
		}
		// Linger only when the others have not had their turn: with a
		// core to spare, they fill the channel while a commit runs.
		if open && len(batch)+len(held) == 1 && time.Since(lastWrite) < busyWindow {
			b.linger(add, func() int { return len(batch) })
		}
		b.write(batch)
		lastWrite = time.Now()
		for _, r := range held {
			b.write([]*insertReq{r})
		}
		held = held[:0]
	}
}

// Under load, enqueues reach the batcher one at a time: on one core the
// batcher runs as soon as the first caller hands it a request (Go runs a
// goroutine woken by a channel send next), before the other callers,
// whose requests are waiting on the network, have been read. Writing at
// once would then commit batches of one, each paying a transaction and an
// fsync. So when the batcher is busy (its last write ended within
// busyWindow) and finds only the one request waiting, it lingers: it
// takes requests as they come until none has come for lingerGap, the
// batch is full, or maxLinger has passed. A request arriving when the
// store is idle is written at once, and on more cores, where the callers
// fill the channel while a commit runs, the batcher does not wait.
const (
	busyWindow = 5 * time.Millisecond
	lingerGap  = 100 * time.Microsecond
	maxLinger  = 2 * time.Millisecond
)

// linger adds requests as they arrive, as described above, until then or
// until the input closes (the range over b.in then ends).
func (b *batcher) linger(add func(*insertReq), size func() int) {
	deadline := time.Now().Add(maxLinger)
	gap := time.NewTimer(lingerGap)
	defer gap.Stop()
	for size() < maxBatch {
		select {
		case r, ok := <-b.in:
			if !ok {
				return
			}
			add(r)
			if time.Now().After(deadline) {
				return
			}
			gap.Reset(lingerGap)
		case <-gap.C:
			return
		}
	}
}

// write commits the requests of a batch whose callers still wait. Should
// the batch fail as a whole, each is tried on its own, so one bad request
// does not fail its neighbours; a failure from the store not answering
// in time is not tried again.
func (b *batcher) write(batch []*insertReq) {
	live := batch[:0:0]
	var deadline time.Time
	for _, r := range batch {
		if r.ctx.Err() != nil {
			continue // its caller has been answered 503; not accepted
		}
		live = append(live, r)
		if d, ok := r.ctx.Deadline(); !ok || d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	ds := make([]Delivery, len(live))
	for i, r := range live {
		ds[i] = r.d
	}
	res, err := b.insert(ctx, ds)
	timedOut := ctx.Err() != nil
	cancel()
	if err != nil && timedOut {
		err = fmt.Errorf("%w: %w", ErrStoreTimeout, err)
	}
	if err != nil && len(live) > 1 && !timedOut && !errors.Is(err, ErrOutcomeUnknown) {
		// One request's trouble (a bad row) must not fail its neighbours:
		// each alone. Not when the batch may have been committed: writing
		// each again would accept it twice.
		for _, r := range live {
			b.write([]*insertReq{r})
		}
		return
	}
	for i, r := range live {
		if err != nil {
			r.done <- inserted{err: err}
			continue
		}
		r.done <- res[i]
	}
}

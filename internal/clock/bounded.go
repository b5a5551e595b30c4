package clock

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Bounded is a context that ends when its parent does or at its
// deadline, like context.WithDeadline's, but starts no timer and
// registers nothing with its parent until something asks for Done.
//
// On the request path nothing usually does: the upstream client keeps the
// deadline as its connection's own deadline and watches the parent
// (Unbounded) for the client going away, and the limiter and the backoff
// read Deadline and wait on Done only when they really wait. A call that
// waits for nothing then pays for no timer, no child registration with
// the server's request context, and no removal of either: together about
// a tenth of Seawall's CPU per pass-through request on one core
// (docs/benchmarks.md). Whoever does call Done gets a real
// context.WithDeadline, made once, and from then on the usual semantics.
//
// Err is latched: the first error it reports stays, as the context
// contract asks, whichever of the deadline or the parent's end it was.
type Bounded struct {
	parent   context.Context
	deadline time.Time

	mu      sync.Mutex
	made    atomic.Bool           // ctx is set
	ctx     context.Context       // the real context, made once by timed; guarded by mu until made
	cancel  context.CancelFunc    // guarded by mu
	stopped bool                  // guarded by mu
	err     atomic.Pointer[error] // the first error reported
}

// The errors Err latches without allocating.
var (
	errCanceled = context.Canceled
	errDeadline = context.DeadlineExceeded
)

// WithDeadline returns a context bounded by parent and by d (or parent's
// own deadline, if earlier). Stop must be called when it is no longer
// needed, as context.WithDeadline's cancel must.
func WithDeadline(parent context.Context, d time.Time) *Bounded {
	b := &Bounded{}
	b.Init(parent, d)
	return b
}

// Init makes b a context bounded by parent and by d, as WithDeadline
// does, for a Bounded held inside a larger value (no allocation of its
// own). A Bounded is initialised once.
func (b *Bounded) Init(parent context.Context, d time.Time) {
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	b.parent, b.deadline = parent, d
}

// Deadline implements context.Context.
func (b *Bounded) Deadline() (time.Time, bool) { return b.deadline, true }

// Done implements context.Context: the first call starts the timer.
func (b *Bounded) Done() <-chan struct{} { return b.timed().Done() }

// Err implements context.Context.
func (b *Bounded) Err() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	var err error
	if b.made.Load() {
		err = b.ctx.Err()
	}
	if err == nil {
		err = b.parent.Err()
	}
	switch {
	case err != nil:
		return b.latch(err)
	case !time.Now().Before(b.deadline):
		b.err.CompareAndSwap(nil, &errDeadline)
		return *b.err.Load()
	}
	return nil
}

// latch keeps err as b's error unless another came first, and returns
// the one kept. Its own function, so that only a call that ends b puts
// err on the heap.
func (b *Bounded) latch(err error) error {
	b.err.CompareAndSwap(nil, &err)
	return *b.err.Load()
}

// Value implements context.Context. Once the timer has started, values
// come through the real context, so that context.Cause and children
// registering with it see it; before, from the parent.
func (b *Bounded) Value(key any) any {
	if b.made.Load() {
		return b.ctx.Value(key)
	}
	return b.parent.Value(key)
}

// AfterFunc lets context.AfterFunc and a child context register with the
// real context directly rather than through a goroutine of their own.
func (b *Bounded) AfterFunc(f func()) (stop func() bool) {
	return context.AfterFunc(b.timed(), f)
}

// Unbounded is the context whose end ends b before its deadline: for a
// caller that keeps the deadline itself, as a connection's deadline, and
// need only watch for the parent's end.
func (b *Bounded) Unbounded() context.Context { return b.parent }

// Stop ends b, as context.WithDeadline's cancel does, and releases the
// timer if one was started; it starts none.
func (b *Bounded) Stop() {
	b.err.CompareAndSwap(nil, &errCanceled)
	b.mu.Lock()
	b.stopped = true
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// timed returns the real context, making it on the first call (ended at
// once if b was stopped).
func (b *Bounded) timed() context.Context {
	if b.made.Load() {
		return b.ctx
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithDeadline(b.parent, b.deadline)
		if b.stopped {
			b.cancel()
		}
		b.made.Store(true)
	}
	return b.ctx
}

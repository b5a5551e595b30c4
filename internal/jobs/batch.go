package jobs

import (
	"errors"
	"sync"
)

// maxBatch bounds how many enqueues share one transaction.
const maxBatch = 256

// ErrStopped is returned by an enqueue after the store has stopped.
var ErrStopped = errors.New("job store stopped")

// inserted is one enqueue's outcome.
type inserted struct {
	job      Job
	existing bool
	err      error
}

type insertReq struct {
	d    Delivery
	done chan inserted
}

// batcher is group commit: one goroutine writes every enqueue that arrives
// while the previous transaction is committing in a single transaction,
// so under load many requests share one fsync, and a lone request still
// goes at once.
type batcher struct {
	insert func([]Delivery) ([]inserted, error)
	in     chan *insertReq
	mu     sync.RWMutex // held for reading while sending on in
	closed bool
	done   chan struct{}
}

func newBatcher(insert func([]Delivery) ([]inserted, error)) *batcher {
	b := &batcher{insert: insert, in: make(chan *insertReq, maxBatch), done: make(chan struct{})}
	go b.run()
	return b
}

// enqueue waits until d is committed, or has failed to be.
func (b *batcher) enqueue(d Delivery) (Job, bool, error) {
	r := &insertReq{d: d, done: make(chan inserted, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return Job{}, false, ErrStopped
	}
	b.in <- r
	b.mu.RUnlock()
	res := <-r.done
	return res.job, res.existing, res.err
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
	collect:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-b.in:
				if !ok {
					break collect
				}
				// One transaction may not hold one key twice: the second
				// goes after, and finds the first's job.
				if keyed(r) {
					held = append(held, r)
				} else {
					batch = append(batch, r)
				}
			default:
				break collect
			}
		}
		b.write(batch)
		for _, r := range held {
			b.write([]*insertReq{r})
		}
		held = held[:0]
	}
}

// write commits a batch. Should the batch fail as a whole, each request is
// tried on its own, so one bad request does not fail its neighbours.
func (b *batcher) write(batch []*insertReq) {
	ds := make([]Delivery, len(batch))
	for i, r := range batch {
		ds[i] = r.d
	}
	res, err := b.insert(ds)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			b.write([]*insertReq{r})
		}
		return
	}
	for i, r := range batch {
		if err != nil {
			r.done <- inserted{err: err}
			continue
		}
		r.done <- res[i]
	}
}

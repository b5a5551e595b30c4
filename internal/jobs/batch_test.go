package jobs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A store that hangs: the enqueue caught in its transaction and the one
// waiting behind it both end at their own deadline with ErrStoreTimeout,
// and the one given up on before its transaction began is never written.
func TestBatcherGivesUpOnAHungStoreAndWritesNothingAbandoned(t *testing.T) {
	var mu sync.Mutex
	var written []string
	started := make(chan struct{}, 1)
	b := newBatcher(func(ctx context.Context, ds []Delivery) ([]inserted, error) {
		mu.Lock()
		for _, d := range ds {
			written = append(written, d.Path)
		}
		mu.Unlock()
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done() // hung until the batch's deadline
		return nil, ctx.Err()
	})
	defer b.close()
	enqueue := func(path string, within time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		_, _, err := b.enqueue(ctx, Delivery{Path: path})
		return err
	}
	errs := make(chan error, 1)
	// The one behind gives up first, so that it is surely abandoned when
	// the hung transaction ends and the batcher reaches it.
	go func() { errs <- enqueue("/stuck", 300*time.Millisecond) }()
	<-started
	if err := enqueue("/behind", 50*time.Millisecond); !errors.Is(err, ErrStoreTimeout) {
		t.Errorf("the enqueue behind a hung transaction: %v, want ErrStoreTimeout", err)
	}
	if err := <-errs; !errors.Is(err, ErrStoreTimeout) {
		t.Errorf("the enqueue in a hung transaction: %v, want ErrStoreTimeout", err)
	}
	// Let the batcher reach the abandoned request, then look.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.enqueue(ctx, Delivery{Path: "/probe"}) //nolint:errcheck // only what it makes the batcher do matters
	mu.Lock()
	defer mu.Unlock()
	for _, p := range written {
		if p == "/behind" {
			t.Errorf("written %v: the request given up on before its transaction began was written", written)
		}
	}
}

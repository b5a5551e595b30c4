package jobs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
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
	b := newBatcher(nil, func(ctx context.Context, ds []Delivery) ([]inserted, error) {
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

// Group commit on one core: the store's work is CPU in this process
// (SQLite is pure Go here), so while a transaction runs no caller gets to
// hand in its request, and the batcher wakes on the first that does.
// Concurrent callers must still share transactions, not commit one by one.
func TestBatcherGroupsConcurrentCallersOnOneCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var mu sync.Mutex
	var sizes []int
	b := newBatcher(nil, func(_ context.Context, ds []Delivery) ([]inserted, error) {
		mu.Lock()
		sizes = append(sizes, len(ds))
		mu.Unlock()
		for spin := time.Now(); time.Since(spin) < 300*time.Microsecond; { //nolint:revive // a transaction's CPU
		}
		return make([]inserted, len(ds)), nil
	})
	defer b.close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := b.enqueue(r.Context(), Delivery{Path: r.URL.Path}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	const callers, each = 32, 40
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := client.Post(srv.URL+"/x", "text/plain", nil)
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("enqueue answered %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
	}
	if total != callers*each {
		t.Fatalf("%d requests written, want %d", total, callers*each)
	}
	if mean := float64(total) / float64(len(sizes)); mean < 4 {
		t.Errorf("%d callers at once shared transactions %.1f at a time (%d transactions), want at least 4", callers, mean, len(sizes))
	}
}

package usage

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seawall/seawall/internal/incident"
)

// Book holds every upstream's meter by name, so that a meter outlives
// the upstream runtime a reload replaces: the counts and the quota go on.
type Book struct {
	events incident.Publisher
	mu     sync.Mutex
	meters map[string]*Meter
	store  Store // nil: memory only
}

// Store keeps the meters' states across restarts.
type Store interface {
	Save(ctx context.Context, states map[string]State) error
	Load(ctx context.Context) (map[string]State, error)
}

// NewBook returns an empty book; events receives the quota events.
func NewBook(events incident.Publisher) *Book {
	return &Book{events: events, meters: map[string]*Meter{}}
}

// Meter returns upstream's meter, made on first use.
func (b *Book) Meter(upstream string) *Meter {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.meters[upstream]
	if m == nil {
		m = NewMeter(upstream, b.events)
		b.meters[upstream] = m
	}
	return m
}

// Reports describes every meter, by upstream name; only those listed
// in names when names is not nil (the upstreams configured now).
func (b *Book) Reports(names []string) []Report {
	b.mu.Lock()
	meters := make([]*Meter, 0, len(b.meters))
	for name, m := range b.meters {
		if names == nil || slices.Contains(names, name) {
			meters = append(meters, m)
		}
	}
	b.mu.Unlock()
	out := make([]Report, 0, len(meters))
	for _, m := range meters {
		out = append(out, m.Report())
	}
	slices.SortFunc(out, func(x, y Report) int { return strings.Compare(x.Upstream, y.Upstream) })
	return out
}

// Restore loads the states store kept, and saves there from now on.
func (b *Book) Restore(ctx context.Context, store Store) error {
	states, err := store.Load(ctx)
	if err != nil {
		return err
	}
	for name, s := range states {
		b.Meter(name).Restore(s)
	}
	b.mu.Lock()
	b.store = store
	b.mu.Unlock()
	return nil
}

// Save writes every meter's state to the store.
func (b *Book) Save(ctx context.Context) error {
	b.mu.Lock()
	store := b.store
	states := make(map[string]State, len(b.meters))
	for name, m := range b.meters {
		states[name] = m.State()
	}
	b.mu.Unlock()
	if store == nil {
		return nil
	}
	return store.Save(ctx, states)
}

// Sync tells the shared meters' calls to the other replicas and reads
// theirs (Meter.Sync).
func (b *Book) Sync(ctx context.Context) {
	b.mu.Lock()
	meters := slices.Collect(maps.Values(b.meters))
	b.mu.Unlock()
	for _, m := range meters {
		m.Sync(ctx)
	}
}

// Run syncs and saves every period until stop is closed, then once more.
func (b *Book) Run(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	save := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Sync(ctx)
		_ = b.Save(ctx) // a failed save is retried at the next tick
	}
	for {
		select {
		case <-stop:
			save()
			return
		case <-t.C:
			save()
		}
	}
}

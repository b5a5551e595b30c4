package retry

import (
	"sync"
	"time"

	"github.com/seawall/seawall/internal/window"
)

// budgetWindow is how far back a Budget looks.
const budgetWindow = 10 * time.Second

// The budget window's counters.
const (
	requests = iota
	retries
)

// Budget allows retries up to Ratio of the requests seen in the last 10s,
// plus MinPerSecond retries a second so that quiet upstreams can still
// retry. It is safe for concurrent use.
type Budget struct {
	ratio    float64
	minRetry float64 // retries allowed per window regardless of traffic
	now      func() time.Time

	mu sync.Mutex
	w  window.Window // guarded by mu
}

// NewBudget returns a budget; now may be nil for the wall clock.
func NewBudget(ratio, minPerSecond float64, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{ratio: ratio, minRetry: minPerSecond * budgetWindow.Seconds(), now: now, w: window.New(budgetWindow)}
}

// Request records a new request (not a retry).
func (b *Budget) Request() {
	b.mu.Lock()
	b.w.Add(b.now(), requests, 1)
	b.mu.Unlock()
}

// Withdraw takes one retry from the budget, reporting false when it is spent.
func (b *Budget) Withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	n := b.w.Sums(now)
	if float64(n[retries]+1) > b.ratio*float64(n[requests])+b.minRetry {
		return false
	}
	b.w.Add(now, retries, 1)
	return true
}

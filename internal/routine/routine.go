// Package routine starts the binary's goroutines. Each one started through
// a Group is counted by name, a panic in it is recovered and logged with
// its stack (the process stays up, and the goroutine's work stops), and
// the server waits for all of them when it shuts down. It is NATS's
// startGoRoutine, with a name on each so that a report says which one.
package routine

import (
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Group tracks goroutines. Its zero value is not usable; a nil *Group
// still recovers and logs panics (to slog's default logger) but tracks
// nothing, for the tests that build one part without a server.
type Group struct {
	log    *slog.Logger
	wg     sync.WaitGroup
	panics atomic.Int64

	mu      sync.Mutex
	running map[string]int // guarded by mu
}

// New returns a Group that logs panics to log.
func New(log *slog.Logger) *Group {
	return &Group{log: log, running: map[string]int{}}
}

// Go runs fn in a new goroutine named name.
func (g *Group) Go(name string, fn func()) {
	if g == nil {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					logPanic(slog.Default(), name, r)
				}
			}()
			fn()
		}()
		return
	}
	g.wg.Add(1)
	g.mu.Lock()
	g.running[name]++
	g.mu.Unlock()
	go func() {
		defer func() {
			r := recover()
			if r != nil {
				logPanic(g.log, name, r)
			}
			g.done(name)
			if r != nil {
				// Counted last: whoever sees the count sees the log line
				// and the goroutine gone from Running.
				g.panics.Add(1)
			}
		}()
		fn()
	}()
}

func (g *Group) done(name string) {
	g.mu.Lock()
	if g.running[name]--; g.running[name] == 0 {
		delete(g.running, name)
	}
	g.mu.Unlock()
	g.wg.Done()
}

// logPanic logs the panic r of the goroutine name, with its stack.
func logPanic(log *slog.Logger, name string, r any) {
	log.Error("goroutine panicked; its work has stopped, the process goes on", slog.String("goroutine", name),
		slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
}

// Wait waits until every goroutine started has returned, or d has passed.
// It reports the names of those still running then, sorted; none when all
// returned.
func (g *Group) Wait(d time.Duration) []string {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return g.Running()
	}
}

// Running names the goroutines running now, sorted, a name once for each.
func (g *Group) Running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(g.running)) {
		for range g.running[name] {
			out = append(out, name)
		}
	}
	return out
}

// Panics is how many goroutines of the group have panicked.
func (g *Group) Panics() int64 { return g.panics.Load() }

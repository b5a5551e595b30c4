package incident

import (
	"sync"
	"time"
)

// Throttle passes on an event of a type for an upstream at most once
// every period; those it holds back are counted, and the next one passed
// on says how many ("suppressed" in its evidence). A storm of dead
// letters or stale answers is a line a minute, not a line a call.
func Throttle(next Publisher, every time.Duration) Publisher {
	return &throttle{next: next, every: every, last: map[[2]string]time.Time{}, held: map[[2]string]int{}}
}

type throttle struct {
	next  Publisher
	every time.Duration
	mu    sync.Mutex
	last  map[[2]string]time.Time
	held  map[[2]string]int
}

func (t *throttle) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	key := [2]string{e.Type, e.Upstream}
	t.mu.Lock()
	if last, ok := t.last[key]; ok && e.Time.Sub(last) < t.every {
		t.held[key]++
		t.mu.Unlock()
		return
	}
	t.last[key] = e.Time
	held := t.held[key]
	delete(t.held, key)
	t.mu.Unlock()
	if held > 0 {
		ev := make(map[string]any, len(e.Evidence)+1)
		for k, v := range e.Evidence {
			ev[k] = v
		}
		ev["suppressed"] = held
		e.Evidence = ev
	}
	t.next.Publish(e)
}

// Discard is a Publisher that drops every event.
var Discard Publisher = discard{}

type discard struct{}

func (discard) Publish(Event) {}

package proxy

import "sync"

// coalescer lets concurrent misses for one key share one upstream call:
// the first caller leads and fills the flight, the rest wait for it.
type coalescer struct {
	mu      sync.Mutex
	flights map[string]*flight // guarded by mu
}

type flight struct {
	done chan struct{}
	res  fillResult // written once by the leader before done closes
}

// join returns the key's flight and whether the caller leads it. The leader
// must call land when its result is set.
func (c *coalescer) join(key string) (*flight, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[key]; ok {
		return f, false
	}
	if c.flights == nil {
		c.flights = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	return f, true
}

// land publishes the leader's result and retires the flight.
func (c *coalescer) land(key string, f *flight) {
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(f.done)
}

package server

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seawall/seawall/internal/routine"
)

// hangup is a request's context on the fasthttp engine, as net/http's
// server gives one: it ends (context.Canceled) when the app hangs up
// while the handler runs (the sweeper) or when the request ends, and
// carries the values of its connection's context (the framing
// listener's). It is one allocation a request, where a
// context.WithCancel and a value on it were three and a map for the
// contexts derived from it. Those register through AfterFunc, which the
// context package calls instead of starting a goroutine to watch a
// parent it does not know, and which the vendor client (internal/h1)
// calls itself: one allocation a registration, its stop.
type hangup struct {
	context.Context // the connection's: its values; never done itself
	g               *routine.Group
	ended           atomic.Bool
	mu              sync.Mutex
	done            chan struct{}  // made by the first Done, or closedChan; guarded by mu
	after           []afterHangup  // to call when it ends, in inline at first; guarded by mu
	inline          [2]afterHangup // a call's interrupt and a child or two: no slice to make
	last            uint64         // the id of the latest registration; guarded by mu
}

type afterHangup struct {
	id uint64
	f  func()
}

func (h *hangup) Deadline() (time.Time, bool) { return time.Time{}, false }

func (h *hangup) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = make(chan struct{})
	}
	return h.done
}

// Err is context.Canceled once h has ended; by then Done is closed (end
// closes it holding the lock Done takes), as the context contract asks.
func (h *hangup) Err() error {
	if h.ended.Load() {
		<-h.Done()
		return context.Canceled
	}
	return nil
}

// AfterFunc calls f once h has ended, unless stop is called first, as
// context.AfterFunc does, but in the goroutine that ends h (the
// request's, or the sweep's), so f must be quick; an f registered after
// the end runs at once, in a goroutine of its own (the context package
// registers holding a lock that f takes).
func (h *hangup) AfterFunc(f func()) (stop func() bool) {
	h.mu.Lock()
	if h.ended.Load() {
		h.mu.Unlock()
		h.g.Go("request context's after-func", f)
		return func() bool { return false }
	}
	if h.after == nil {
		h.after = h.inline[:0]
	}
	h.last++
	id := h.last
	h.after = append(h.after, afterHangup{id: id, f: f})
	h.mu.Unlock()
	return func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i := range h.after {
			if h.after[i].id == id {
				last := len(h.after) - 1
				copy(h.after[i:], h.after[i+1:])
				h.after[last] = afterHangup{}
				h.after = h.after[:last]
				return true
			}
		}
		return false // it has run
	}
}

// end ends h, once, and calls what was registered after it, in order.
func (h *hangup) end() {
	h.mu.Lock()
	if h.ended.Load() {
		h.mu.Unlock()
		return
	}
	h.ended.Store(true) // before Done closes: whoever sees it closed sees Err
	if h.done == nil {
		h.done = closedChan
	} else {
		close(h.done)
	}
	after := h.after
	h.after = nil
	h.mu.Unlock()
	for _, a := range after { // nothing changes them now: h has ended
		a.f()
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// sweeper ends a request's context when its app hangs up while the
// handler runs, as net/http's server does with a read in the background
// of every request (Seawall then ends the vendor call: its 499). One
// goroutine does it for all requests: every tick it peeks, without
// reading or waiting, at the connection of each request that was in
// flight at the tick before. A connection is added to the sweep when
// accepted and removed when closed; a request only stores its context
// on its connection, and a request that runs longer pays a system call
// a tick; a hang-up is noticed within two ticks. (A goroutine a request
// waiting on the poller, as net/http, noticed it at once and cost a
// pass-through about 1 µs more: ADR 0006.)
type sweeper struct {
	g     *routine.Group
	mu    sync.Mutex
	conns map[*rawConn]struct{} // guarded by mu
	gen   atomic.Uint64         // ticks so far
	done  chan struct{}
	once  sync.Once
}

func newSweeper(g *routine.Group, tick time.Duration) *sweeper {
	s := &sweeper{g: g, conns: map[*rawConn]struct{}{}, done: make(chan struct{})}
	g.Go("hang-up sweep", func() { s.run(tick) })
	return s
}

func (s *sweeper) run(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var gone []*hangup
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		gone = s.sweep(gone[:0])
		for i, h := range gone {
			h.end() // outside the lock: what was registered on h runs now
			gone[i] = nil
		}
	}
}

// sweep appends to gone the contexts of the requests, in flight since
// the tick before, whose apps have hung up.
func (s *sweeper) sweep(gone []*hangup) []*hangup {
	var b [1]byte
	// The lock is held while peeking, so that no connection is closed
	// under the peek (close removes it first).
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := s.gen.Load()
	for c := range s.conns {
		h := c.req.Load()
		if h == nil || c.since.Load() == gen {
			continue // idle, or younger than a tick
		}
		_ = c.rc.Control(func(fd uintptr) {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if n == 0 && err == nil {
				gone = append(gone, h) // the app hung up
			}
		})
	}
	s.gen.Add(1)
	return gone
}

// add and remove put a connection in the sweep and take it out.
func (s *sweeper) add(c *rawConn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *sweeper) remove(c *rawConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// watch gives a request on c a context that ends when its app hangs up,
// or at unwatch; base holds the connection's values. With nil c (no
// socket to peek at) the context only ends at unwatch.
func (s *sweeper) watch(c *rawConn, base context.Context) *hangup {
	h := &hangup{Context: base, g: s.g}
	if c != nil {
		c.since.Store(s.gen.Load())
		c.req.Store(h)
	}
	return h
}

// unwatch ends a request's watch and its context.
func (s *sweeper) unwatch(c *rawConn, h *hangup) {
	if c != nil {
		c.req.Store(nil)
	}
	h.end()
}

func (s *sweeper) stop() { s.once.Do(func() { close(s.done) }) }

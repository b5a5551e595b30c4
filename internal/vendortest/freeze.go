package vendortest

import (
	"net"
	"sync"
	"testing"
)

// Freezer is a TCP relay in front of a real server that can stop
// relaying, as that server would look stopped with SIGSTOP: connections
// are still accepted and stay open, bytes sent are taken, and nothing
// comes back until Thaw, when everything held moves on.
type Freezer struct {
	Addr   string
	target string

	mu    sync.Mutex
	thawn chan struct{} // closed while not frozen
	conns []net.Conn
}

// NewFreezer relays a loopback address to target until the test ends.
func NewFreezer(t *testing.T, target string) *Freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Freezer{Addr: ln.Addr().String(), target: target, thawn: make(chan struct{})}
	close(f.thawn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.relay(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		f.Thaw()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			_ = c.Close()
		}
	})
	return f
}

// Freeze stops relaying.
func (f *Freezer) Freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.thawn:
		f.thawn = make(chan struct{})
	default:
	}
}

// Thaw relays again, what was held first.
func (f *Freezer) Thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.thawn:
	default:
		close(f.thawn)
	}
}

// gate waits while frozen.
func (f *Freezer) gate() {
	f.mu.Lock()
	ch := f.thawn
	f.mu.Unlock()
	<-ch
}

func (f *Freezer) track(c net.Conn) {
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
}

func (f *Freezer) relay(c net.Conn) {
	f.track(c)
	f.gate() // a stopped server accepts (the kernel does), then says nothing
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		_ = c.Close()
		return
	}
	f.track(up)
	go f.pipe(up, c)
	f.pipe(c, up)
}

// pipe copies from src to dst, holding each chunk while frozen.
func (f *Freezer) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

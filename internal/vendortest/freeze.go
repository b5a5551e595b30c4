package vendortest

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
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
	cut   *cutRule // armed by CutAfter; nil when none
}

// cutRule cuts the first connection that sends after, then when.
type cutRule struct{ after, when []byte }

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

// CutAfter arms a one-time cut: the first connection whose client sends a
// chunk holding after (case folded) and then one holding when has that
// last chunk relayed to the server, and is closed both ways a moment
// later, before the server's answer can come back. Against PostgreSQL,
// CutAfter("jobinsert", "commit\x00") loses the answer to the COMMIT of
// River's insert, which the server carries out (the statement's text is
// sent the first time a connection prepares it).
func (f *Freezer) CutAfter(after, when string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = &cutRule{after: []byte(after), when: []byte(when)}
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
	go f.pipe(up, c, true)
	f.pipe(c, up, false)
}

// pipe copies from src to dst, holding each chunk while frozen; on the
// way to the server it watches for an armed cut.
func (f *Freezer) pipe(dst, src net.Conn, toServer bool) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	sawAfter := false
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if toServer && f.cutNow(bytes.ToLower(buf[:n]), &sawAfter) {
				_ = src.Close()                    // the client hears nothing more
				time.Sleep(100 * time.Millisecond) // while the server acts on what it got
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutNow reports whether chunk, sent to the server, fires the armed cut,
// disarming it; sawAfter is this connection's progress through the rule.
func (f *Freezer) cutNow(chunk []byte, sawAfter *bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		return false
	}
	if *sawAfter && bytes.Contains(chunk, f.cut.when) {
		f.cut = nil
		return true
	}
	if bytes.Contains(chunk, f.cut.after) {
		*sawAfter = true
		return bytes.Contains(chunk, f.cut.when) && f.fire()
	}
	return false
}

// fire disarms the cut and reports that it fired. Caller holds mu.
func (f *Freezer) fire() bool {
	f.cut = nil
	return true
}

package proxy

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// goBackground runs fn in a goroutine that Close waits for, logging a panic
// instead of crashing the process. All of the proxy's background work
// (stale-while-revalidate refreshes) starts here.
func (p *Proxy) goBackground(what string, fn func()) {
	p.background.Add(1)
	go func() {
		defer p.background.Done()
		defer func() {
			if r := recover(); r != nil {
				p.log.Error("background work panicked", slog.String("what", what),
					slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
			}
		}()
		fn()
	}()
}

// Close waits for background work to finish. Call it after the listeners
// have stopped.
func (p *Proxy) Close() {
	p.background.Wait()
	p.ups.Close()
}

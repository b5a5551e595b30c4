package proxy

// goBackground runs fn in a goroutine of the proxy's group (which logs a
// panic instead of crashing the process) that Close waits for. All of the
// proxy's background work (stale-while-revalidate refreshes) starts here.
func (p *Proxy) goBackground(what string, fn func()) {
	p.background.Add(1)
	p.routines.Go(what, func() {
		defer p.background.Done()
		fn()
	})
}

// Close waits for background work to finish. Call it after the listeners
// have stopped.
func (p *Proxy) Close() {
	p.background.Wait()
}

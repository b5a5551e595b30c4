// Package testwait waits, in tests, for what another process or goroutine
// makes true, and says how long it took.
package testwait

import "time"

// Within polls ok every 5 ms for up to d; it returns how long ok took to
// hold, and whether it did.
func Within(d time.Duration, ok func() bool) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		if ok() {
			return time.Since(start), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return d, ok()
}

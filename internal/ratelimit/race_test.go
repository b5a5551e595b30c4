//go:build race

package ratelimit

// raceEnabled: the race detector slows the simulations tenfold, and they
// run in one goroutine, where it finds nothing: they take fewer cases.
const raceEnabled = true

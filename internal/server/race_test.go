//go:build race

package server

// raceEnabled: the race detector allocates on its own account, so the
// allocation counts are not checked under it.
const raceEnabled = true

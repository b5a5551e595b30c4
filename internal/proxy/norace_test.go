//go:build !race

package proxy_test

import "time"

// raceEnabled says the race detector is on, which slows every call.
const raceEnabled = false

// wireSlack is how long a call released just before a pause may take to
// reach the fake and still count as already on its way.
const wireSlack = 5 * time.Millisecond

//go:build race

package proxy_test

import "time"

const raceEnabled = true

// wireSlack: under the race detector a call takes longer to reach the fake.
const wireSlack = 50 * time.Millisecond

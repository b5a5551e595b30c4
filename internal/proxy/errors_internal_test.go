package proxy

import (
	"strconv"
	"testing"
)

// The Retry-After value follows the seconds asked for, whichever was
// asked last (it keeps the one made last, for the refusals of a second).
func TestRetryAfterFieldFollowsTheSeconds(t *testing.T) {
	for _, secs := range []int{1, 1, 3600, 2, 2, 1, 59} {
		if got := retryAfterField(secs); len(got) != 1 || got[0] != strconv.Itoa(secs) {
			t.Errorf("%d seconds: %q", secs, got)
		}
	}
}

package jobs

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
)

func TestSchedulePolicy(t *testing.T) {
	explicit := schedulePolicy(Schedule{Delays: []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}})
	for failures, want := range map[int]time.Duration{1: 10 * time.Second, 2: time.Minute, 3: 5 * time.Minute, 7: 5 * time.Minute} {
		job := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, failures)}
		got := time.Until(explicit.NextRetry(job))
		if got > want || got < want-time.Second {
			t.Errorf("after %d failures: retry in %v, want %v", failures, got.Round(time.Second), want)
		}
	}
	backoff := schedulePolicy(Schedule{BaseDelay: time.Second, MaxDelay: 8 * time.Second})
	for failures, ceiling := range map[int]time.Duration{1: time.Second, 3: 4 * time.Second, 10: 8 * time.Second} {
		job := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, failures)}
		for i := 0; i < 200; i++ {
			if got := time.Until(backoff.NextRetry(job)); got > ceiling {
				t.Fatalf("after %d failures: retry in %v, over the %v ceiling", failures, got, ceiling)
			}
		}
	}
}

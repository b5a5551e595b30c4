package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/seawall/seawall/internal/incident"
)

// WatchQueueAge checks every period how long each upstream's oldest
// unfinished job has waited, and tells pub when it passes threshold
// (jobs.queue_age_high, which holds an incident open) and when it is
// back under (jobs.queue_age_ok). It returns when ctx ends.
func WatchQueueAge(ctx context.Context, s Store, every, threshold time.Duration, pub incident.Publisher) {
	high := map[string]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cctx, cancel := context.WithTimeout(ctx, every)
			counts, err := s.Counts(cctx)
			cancel()
			if err != nil {
				continue // the store's own trouble shows in seawall_store_up and /readyz
			}
			oldest, waiting := map[string]time.Time{}, map[string]int{}
			for _, c := range counts {
				if c.State != Queued && c.State != Retrying && c.State != Running {
					continue
				}
				waiting[c.Upstream] += c.N
				if o, ok := oldest[c.Upstream]; !ok || c.Oldest.Before(o) {
					oldest[c.Upstream] = c.Oldest
				}
			}
			for upstream := range high {
				if _, ok := oldest[upstream]; !ok {
					oldest[upstream] = now // nothing waits any more
				}
			}
			for upstream, o := range oldest {
				age := now.Sub(o)
				switch {
				case age > threshold && !high[upstream]:
					high[upstream] = true
					pub.Publish(incident.Event{Time: now, Type: incident.QueueAgeHigh, Upstream: upstream, Severity: incident.Warning,
						Summary:  fmt.Sprintf("the oldest of %d unfinished jobs has waited %s (threshold %s)", waiting[upstream], age.Round(time.Second), threshold),
						Evidence: map[string]any{"oldest_age_seconds": age.Seconds(), "unfinished": waiting[upstream], "threshold_seconds": threshold.Seconds()}})
				case age <= threshold && high[upstream]:
					delete(high, upstream)
					pub.Publish(incident.Event{Time: now, Type: incident.QueueAgeOK, Upstream: upstream, Severity: incident.Info,
						Summary:  fmt.Sprintf("the job queue is back under %s: %d unfinished", threshold, waiting[upstream]),
						Evidence: map[string]any{"oldest_age_seconds": age.Seconds(), "unfinished": waiting[upstream]}})
				}
			}
		}
	}
}

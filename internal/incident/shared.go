package incident

import (
	"context"
	"slices"
	"time"
)

// Shared keeps one incident per outage across replicas
// (docs/distributed.md, "Incidents"): each replica still records its own
// events and opens its own incident, and joins it to the cluster's
// incident for the upstream, whose id the notices carry. Notices are sent
// by one replica: a trigger by the first to reach a severity, a resolve by
// the last to leave.
type Shared interface {
	// Join adds this replica to the incident open for upstream, opening
	// one with an id above floor when none is, and returns its id.
	Join(ctx context.Context, upstream string, floor int64) (int64, error)
	// Beat says this replica still holds incident id open.
	Beat(ctx context.Context, upstream string, id int64) error
	// Leave takes this replica out of incident id; last says no live
	// replica holds it open any more, and that this one is to tell so.
	Leave(ctx context.Context, upstream string, id int64) (last bool, err error)
	// Claim says whether this replica is the one to trigger id at sev:
	// the first to reach a severity higher than any triggered before.
	Claim(ctx context.Context, id int64, sev Severity) (bool, error)
	// Add keeps events of incident id, and Events reads those every
	// replica kept, in the order kept.
	Add(ctx context.Context, id int64, events []Event) error
	Events(ctx context.Context, id int64) ([]Event, error)
}

// sharedTimeout bounds each call to the cluster: the recorder's loop
// waits for it, and a cluster that does not answer leaves each replica
// its own incidents, as with no cluster at all.
const sharedTimeout = time.Second

// leaveFor is how long a resolve waits for the cluster to answer; then
// this replica tells it itself.
const leaveFor = 2 * time.Minute

// Share joins the recorder's incidents to the cluster's, its events
// marked as replica's, in zone. Call it before Run.
func (r *Recorder) Share(s Shared, replica, zone string) {
	r.mu.Lock()
	r.shared, r.replica, r.zone = s, replica, zone
	r.mu.Unlock()
}

// trigger joins a triggered incident to the cluster's, and tells notify
// of it unless another replica has told of it at its severity.
func (r *Recorder) trigger(n Notice, notify func(Notice)) {
	if r.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		if n.Incident.Cluster == 0 {
			r.mu.Lock()
			floor := r.clusterFloor
			r.mu.Unlock()
			if id, err := r.shared.Join(ctx, n.Incident.Upstream, floor); err == nil {
				r.mu.Lock()
				for _, in := range r.incidents {
					if in.ID == n.Incident.ID {
						in.Cluster = id
						r.unsavedInc[in.ID] = true
					}
				}
				r.clusterFloor = max(r.clusterFloor, id)
				r.mu.Unlock()
				n.Incident.Cluster = id
			}
		}
		if n.Incident.Cluster != 0 {
			if first, err := r.shared.Claim(ctx, n.Incident.Cluster, n.Incident.Severity); err == nil && !first {
				return // another replica told of it
			}
		}
	}
	if notify != nil {
		notify(n)
	}
}

// shareTick keeps this replica in each cluster incident it holds open and
// hands the cluster the events it has not yet kept.
func (r *Recorder) shareTick() {
	if r.shared == nil {
		return
	}
	type held struct {
		upstream string
		id       int64
		events   []Event
		in       *Incident
	}
	var hs []held
	r.mu.Lock()
	for _, in := range r.open {
		if in.Cluster != 0 {
			hs = append(hs, held{in.Upstream, in.Cluster, slices.Clone(in.Events[in.kept:]), in})
		}
	}
	r.mu.Unlock()
	for _, h := range hs {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		if r.shared.Beat(ctx, h.upstream, h.id) == nil && len(h.events) > 0 && r.shared.Add(ctx, h.id, h.events) == nil {
			r.mu.Lock()
			h.in.kept += len(h.events)
			r.mu.Unlock()
		}
		cancel()
	}
}

// leave takes this replica out of a resolved incident's cluster incident,
// and says whether this replica tells of the resolve: the last to leave
// does, and, when the cluster has not answered for leaveFor, each.
func (r *Recorder) leave(in *Incident, now time.Time) (tell, done bool) {
	r.mu.Lock()
	id, events := in.Cluster, slices.Clone(in.Events[in.kept:])
	if in.leaving.IsZero() {
		in.leaving = now
	}
	since := in.leaving
	r.mu.Unlock()
	if r.shared == nil || id == 0 {
		return true, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if len(events) > 0 && r.shared.Add(ctx, id, events) == nil {
		r.mu.Lock()
		in.kept += len(events)
		r.mu.Unlock()
	}
	last, err := r.shared.Leave(ctx, in.Upstream, id)
	switch {
	case err == nil:
		return last, true
	case now.Sub(since) >= leaveFor:
		return true, true
	}
	return false, false
}

// clusterEvents are the events of every replica in v's cluster incident,
// with v's own not yet kept there, oldest first; v's own alone when the
// cluster does not answer.
func (r *Recorder) clusterEvents(v Incident) []Event {
	if r.shared == nil || v.Cluster == 0 {
		return v.Events
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	all, err := r.shared.Events(ctx, v.Cluster)
	if err != nil {
		return v.Events
	}
	type key struct {
		replica string
		id      int64
	}
	seen := map[key]bool{}
	for _, e := range all {
		seen[key{e.Replica, e.ID}] = true
	}
	for _, e := range v.Events {
		if !seen[key{e.Replica, e.ID}] {
			all = append(all, e)
		}
	}
	slices.SortStableFunc(all, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return all
}

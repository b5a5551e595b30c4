// Package incident turns what Seawall's parts report (a breaker opening,
// an endpoint isolated, a pause, a dead letter) into events, and groups
// an upstream's events into incidents: one opens on the first bad event,
// collects the later ones, and resolves once all its conditions have
// cleared for a quiet period. A flapping breaker in one outage is one
// incident. The rules are written down in docs/incidents.md.
package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Severity orders events: only warning and above open an incident.
type Severity int

// The severities, least first.
const (
	Info Severity = iota
	Warning
	Error
	Critical
)

var severityNames = [...]string{"info", "warning", "error", "critical"}

func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity reads a severity's name.
func ParseSeverity(name string) (Severity, error) {
	if i := slices.Index(severityNames[:], strings.ToLower(name)); i >= 0 {
		return Severity(i), nil
	}
	return 0, fmt.Errorf("severity %q: want info, warning, error or critical", name)
}

// MarshalJSON writes the severity's name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity's name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	*s = v
	return err
}

// The event types. Each is documented, with its evidence, in
// docs/incidents.md.
const (
	BreakerOpened    = "breaker.opened"
	BreakerHalfOpen  = "breaker.half_open"
	BreakerClosed    = "breaker.closed"
	EndpointIsolated = "endpoint.isolated"
	EndpointRestored = "endpoint.restored"
	ShiftAdded       = "shift.added"
	ShiftRemoved     = "shift.removed"
	ShiftExpired     = "shift.expired"
	UpstreamPaused   = "upstream.paused"
	JobsDeadLettered = "jobs.dead_lettered"
	QueueAgeHigh     = "jobs.queue_age_high"
	QuotaWarning     = "quota.warning"
	QuotaExhausted   = "quota.exhausted"
	QueueAgeOK       = "jobs.queue_age_ok"
	CacheStale       = "cache.serving_stale"
	ConfigReloaded   = "config.reloaded"
	ConfigRejected   = "config.rejected"
	RedisUnreachable = "redis.unreachable"
	RedisRestored    = "redis.restored"
	ReplicasDisagree = "replicas.disagree"
	ZoneUnready      = "zone.unready"
	ZoneReady        = "zone.ready"
	CachePurged      = "cache.purged"
	JobsReplayed     = "jobs.replayed"
)

// Event is one thing that happened, with its evidence.
type Event struct {
	ID       int64          `json:"id"`
	Time     time.Time      `json:"time"`
	Type     string         `json:"type"`
	Upstream string         `json:"upstream,omitempty"`
	Endpoint string         `json:"endpoint,omitempty"`
	Zone     string         `json:"zone,omitempty"`
	Severity Severity       `json:"severity"`
	Summary  string         `json:"summary"` // one readable line, with the figures
	Evidence map[string]any `json:"evidence,omitempty"`
	// Incident is the incident the event belongs to; 0 for none.
	Incident int64 `json:"incident,omitempty"`
	// Replica and ReplicaZone name the replica that recorded it, when
	// replicas share their incidents (docs/distributed.md).
	Replica     string `json:"replica,omitempty"`
	ReplicaZone string `json:"replica_zone,omitempty"`
	// Pause is how long an upstream.paused event holds its condition.
	Pause time.Duration `json:"-"`
}

// Publisher receives events. It must not block.
type Publisher interface{ Publish(Event) }

// Incident is an upstream's trouble, from its first bad event until its
// conditions have been clear for the quiet period.
type Incident struct {
	ID int64 `json:"id"`
	// Cluster is the id of the incident every replica that saw the outage
	// joined, when replicas share their incidents: the notices carry it.
	Cluster int64 `json:"cluster,omitempty"`
	// Replica is the replica that opened it, when replicas share their
	// incidents: its notices, should Redis not answer, are its own.
	Replica  string     `json:"replica,omitempty"`
	Upstream string     `json:"upstream"`
	Opened   time.Time  `json:"opened"`
	Resolved *time.Time `json:"resolved,omitempty"`
	// Severity is the highest of its events.
	Severity Severity `json:"severity"`
	// Summary is the event that opened it.
	Summary string `json:"summary"`
	// Conditions are what still holds it open: "breaker", "paused",
	// "endpoint <url>".
	Conditions []string `json:"conditions"`
	// Impact counts what the incident did to calls, since it opened (or
	// until it resolved): requests failed fast, rejected by the limiter,
	// answered stale, jobs delayed and dead-lettered.
	Impact map[string]float64 `json:"impact"`
	Events []Event            `json:"events,omitempty"`
	// QuietSince is its last bad event or cleared condition: it resolves
	// a quiet period after, once no condition holds.
	QuietSince time.Time `json:"quiet_since"`

	base    map[string]float64 // the impact counters when it opened (or when Seawall restarted)
	carried map[string]float64 // impact counted before a restart
	kept    int                // its events the cluster keeps (shared.go)
	leaving time.Time          // when it resolved, while the cluster has not answered its leave
}

// State is "open" or "resolved".
func (in *Incident) State() string {
	if in.Resolved != nil {
		return "resolved"
	}
	return "open"
}

// Store keeps the events and incidents across restarts.
type Store interface {
	// Save writes new events, and incidents new or changed.
	Save(ctx context.Context, events []Event, incidents []Incident) error
	// Load reads the newest events and incidents kept, oldest first.
	Load(ctx context.Context, events, incidents int) ([]Event, []Incident, error)
}

// Config tunes a Recorder.
type Config struct {
	// ResolveAfter is the quiet period: an incident resolves once its
	// conditions have been clear this long. Default 2m.
	ResolveAfter time.Duration
	// KeepEvents and KeepIncidents bound what is kept in memory, the
	// oldest dropped first. Defaults 10,000 and 500.
	KeepEvents, KeepIncidents int
}

// Recorder keeps the events and the incidents.
type Recorder struct {
	cfg Config
	// impact reads an upstream's impact counters (they only grow).
	impact func(upstream string) map[string]float64

	queue   chan Event
	dropped atomic.Int64 // events the full queue refused
	store   Store        // nil: memory only

	mu        sync.Mutex
	events    []Event
	incidents []*Incident
	open      map[string]*Incident            // by upstream
	conds     map[string]map[string]time.Time // upstream → condition → until (zero: until cleared)
	nextEvent int64
	nextInc   int64

	// unsaved are the events, and the incidents by id, not yet in store.
	unsaved    []Event
	unsavedInc map[int64]bool

	// shared, when not nil, keeps one incident per outage across
	// replicas; replica and zone mark this one's events (shared.go).
	shared        Shared
	replica, zone string
	clusterFloor  int64 // the highest cluster incident id known here
	leaving       []*Incident
}

// NewRecorder returns a recorder; impact, if not nil, reads an upstream's
// impact counters, which an incident reports as growth since it opened.
func NewRecorder(cfg Config, impact func(upstream string) map[string]float64) *Recorder {
	if cfg.ResolveAfter <= 0 {
		cfg.ResolveAfter = 2 * time.Minute
	}
	if cfg.KeepEvents <= 0 {
		cfg.KeepEvents = 10000
	}
	if cfg.KeepIncidents <= 0 {
		cfg.KeepIncidents = 500
	}
	return &Recorder{cfg: cfg, impact: impact, queue: make(chan Event, 4096),
		open: map[string]*Incident{}, conds: map[string]map[string]time.Time{}, unsavedInc: map[int64]bool{}}
}

// Publish hands an event to Run, never blocking: the request path
// publishes. Should the queue be full, the event is dropped and counted.
func (r *Recorder) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	select {
	case r.queue <- e:
	default:
		r.dropped.Add(1)
	}
}

// Record records an event at once: it sets or clears the upstream's
// conditions, opens an incident on a bad event when none is open, and
// joins the incident open for its upstream. Run records so, telling its
// notify; tests may call Record, which tells no one.
func (r *Recorder) Record(e Event) { r.record(e, nil) }

// record is Record, telling notify (when not nil) of a triggered incident.
func (r *Recorder) record(e Event, notify func(Notice)) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var base map[string]float64
	r.mu.Lock()
	opens := e.Upstream != "" && e.Severity >= Warning && r.open[e.Upstream] == nil
	r.mu.Unlock()
	if opens && r.impact != nil {
		base = r.impact(e.Upstream) // may be slow: not under the lock; Record has one caller at a time
	}
	var notice *Notice
	defer func() {
		if notice != nil && (notify != nil || r.shared != nil) {
			n := *notice
			n.Incident = r.withImpact(n.Incident)
			r.trigger(n, notify)
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextEvent++
	e.ID = r.nextEvent
	if r.shared != nil {
		e.Replica, e.ReplicaZone = r.replica, r.zone
	}
	cleared := r.condition(e)
	if e.Upstream != "" {
		in := r.open[e.Upstream]
		opened := false
		if in == nil && e.Severity >= Warning {
			in, opened = r.openIncident(e, base), true
		}
		if in != nil {
			r.unsavedInc[in.ID] = true
			e.Incident = in.ID
			in.Events = append(in.Events, e)
			if opened || e.Severity > in.Severity {
				in.Severity = max(in.Severity, e.Severity)
				notice = &Notice{Action: Trigger, Incident: r.view(in, false), Event: e}
			}
			if e.Severity >= Warning || cleared {
				in.QuietSince = e.Time
			}
		}
	}
	r.events = append(r.events, e)
	if r.store != nil {
		r.unsaved = append(r.unsaved, e)
	}
	if len(r.events) > r.cfg.KeepEvents {
		r.events = slices.Delete(r.events, 0, len(r.events)-r.cfg.KeepEvents)
	}
}

// condition applies e to its upstream's conditions, and says whether it
// cleared one. r.mu is held.
func (r *Recorder) condition(e Event) (cleared bool) {
	if e.Upstream == "" {
		return false
	}
	cs := r.conds[e.Upstream]
	if cs == nil {
		cs = map[string]time.Time{}
		r.conds[e.Upstream] = cs
	}
	clear := func(key string) {
		if _, ok := cs[key]; ok {
			delete(cs, key)
			cleared = true
		}
	}
	switch e.Type {
	case BreakerOpened:
		cs["breaker"] = time.Time{}
	case BreakerClosed:
		clear("breaker")
	case EndpointIsolated:
		cs["endpoint "+e.Endpoint] = time.Time{}
	case EndpointRestored:
		clear("endpoint " + e.Endpoint)
	case UpstreamPaused:
		cs["paused"] = e.Time.Add(e.Pause)
	case QueueAgeHigh:
		cs["queue age"] = time.Time{}
	case QueueAgeOK:
		clear("queue age")
	}
	return cleared
}

// openIncident opens one for e's upstream. r.mu is held.
func (r *Recorder) openIncident(e Event, base map[string]float64) *Incident {
	r.nextInc++
	in := &Incident{ID: r.nextInc, Replica: r.replica, Upstream: e.Upstream, Opened: e.Time, Severity: e.Severity, Summary: e.Summary, QuietSince: e.Time, base: base}
	r.open[e.Upstream] = in
	r.incidents = append(r.incidents, in)
	if len(r.incidents) > r.cfg.KeepIncidents {
		r.incidents = slices.Delete(r.incidents, 0, len(r.incidents)-r.cfg.KeepIncidents)
	}
	return in
}

// Tick ends the timed conditions that are over, and resolves each open
// incident whose conditions have been clear for the quiet period.
func (r *Recorder) Tick(now time.Time) { r.tick(now, nil) }

// tick is Tick, telling notify (when not nil) of each resolve.
func (r *Recorder) tick(now time.Time, notify func(Notice)) {
	r.mu.Lock()
	var resolving []*Incident
	for upstream, cs := range r.conds {
		for key, until := range cs {
			if !until.IsZero() && !now.Before(until) {
				delete(cs, key)
				if in := r.open[upstream]; in != nil {
					in.QuietSince = until
				}
			}
		}
	}
	for upstream, in := range r.open {
		if len(r.conds[upstream]) > 0 || now.Sub(in.QuietSince) < r.cfg.ResolveAfter {
			continue
		}
		t := now
		in.Resolved = &t
		delete(r.open, upstream)
		r.unsavedInc[in.ID] = true
		resolving = append(resolving, in)
	}
	left := r.leaving
	r.leaving = nil
	r.mu.Unlock()
	r.shareTick()
	for _, in := range slices.Concat(left, resolving) {
		if in.leaving.IsZero() {
			impact := r.impactSince(in.Upstream, in.base, in.carried)
			r.mu.Lock()
			in.Impact = impact
			r.mu.Unlock()
		}
		tell, done := r.leave(in, now)
		if !done {
			r.mu.Lock()
			r.leaving = append(r.leaving, in) // the cluster did not answer: again next tick
			r.mu.Unlock()
		}
		r.mu.Lock()
		v := r.view(in, false)
		var last Event
		if len(in.Events) > 0 {
			last = in.Events[len(in.Events)-1]
		}
		r.mu.Unlock()
		if tell && notify != nil {
			// Told before the resolve is saved: a crash in between sends
			// the resolve twice, never not at all.
			notify(Notice{Action: Resolve, Incident: v, Event: last})
		}
	}
	if len(resolving) > 0 {
		r.save()
	}
}

// Run records the published events as they come, and every second ticks
// and saves what changed to the store, until stop is closed (then it
// saves once more). A crash loses at most the last second. notify, when
// not nil, is told when an incident is triggered (opened, or its severity
// rose) and when it resolves.
func (r *Recorder) Run(stop <-chan struct{}, notify func(Notice)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			r.drain(notify)
			r.save()
			return
		case e := <-r.queue:
			r.record(e, notify)
		case now := <-t.C:
			r.tick(now, notify)
			r.save()
		}
	}
}

// drain records what is queued.
func (r *Recorder) drain(notify func(Notice)) {
	for {
		select {
		case e := <-r.queue:
			r.record(e, notify)
		default:
			return
		}
	}
}

// save writes what changed since the last save; what fails stays to be
// written next time.
func (r *Recorder) save() {
	if r.store == nil {
		return
	}
	r.mu.Lock()
	events := r.unsaved
	var incs []Incident
	for id := range r.unsavedInc {
		for _, in := range r.incidents {
			if in.ID == id {
				incs = append(incs, r.view(in, false))
			}
		}
	}
	r.unsaved, r.unsavedInc = nil, map[int64]bool{}
	r.mu.Unlock()
	if len(events) == 0 && len(incs) == 0 {
		return
	}
	for i := range incs {
		incs[i] = r.withImpact(incs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.Save(ctx, events, incs); err != nil {
		r.mu.Lock()
		r.unsaved = append(events, r.unsaved...)
		for _, in := range incs {
			r.unsavedInc[in.ID] = true
		}
		r.mu.Unlock()
	}
}

// Restore loads what store kept and saves there from now on. An incident
// open at the last save is open again: its impact so far is carried, its
// conditions are not (the breaker and the endpoints start afresh), so it
// resolves a quiet period after its last bad event unless new ones come.
func (r *Recorder) Restore(ctx context.Context, store Store) error {
	events, incs, err := store.Load(ctx, r.cfg.KeepEvents, r.cfg.KeepIncidents)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.store = store
	r.events = append(events, r.events...)
	for _, e := range events {
		r.nextEvent = max(r.nextEvent, e.ID)
	}
	byID := map[int64]*Incident{}
	for i := range incs {
		in := &incs[i]
		r.nextInc = max(r.nextInc, in.ID)
		r.clusterFloor = max(r.clusterFloor, in.Cluster)
		in.carried, in.Impact = in.Impact, nil
		if in.Resolved == nil && r.impact != nil {
			in.base = r.impact(in.Upstream)
		}
		if in.Resolved != nil {
			in.Impact = in.carried
		}
		byID[in.ID] = in
		r.incidents = append(r.incidents, in)
		if in.Resolved == nil {
			r.open[in.Upstream] = in
		}
	}
	for _, e := range events {
		if in := byID[e.Incident]; in != nil {
			in.Events = append(in.Events, e)
			in.kept = len(in.Events) // handed to the cluster before the restart, or lost with it
		}
	}
	return nil
}

// Dropped is how many events a full queue refused.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// impactSince is the growth of upstream's impact counters since base,
// plus what was carried over a restart.
func (r *Recorder) impactSince(upstream string, base, carried map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range carried {
		out[k] = v
	}
	if r.impact == nil {
		return out
	}
	for k, v := range r.impact(upstream) {
		out[k] += v - base[k]
	}
	return out
}

// view copies in for reading, with its conditions as of now. r.mu is
// held.
func (r *Recorder) view(in *Incident, withEvents bool) Incident {
	v := *in
	v.Events = nil
	if withEvents {
		v.Events = slices.Clone(in.Events)
	}
	v.Conditions = []string{}
	if in.Resolved == nil {
		for key := range r.conds[in.Upstream] {
			v.Conditions = append(v.Conditions, key)
		}
		slices.Sort(v.Conditions)
	}
	return v
}

// withImpact fills an open incident's impact as of now (not under r.mu:
// reading the counters may be slow).
func (r *Recorder) withImpact(v Incident) Incident {
	if v.Resolved == nil {
		v.Impact = r.impactSince(v.Upstream, v.base, v.carried)
	}
	if v.Impact == nil {
		v.Impact = map[string]float64{}
	}
	return v
}

// Incidents lists the incidents kept, newest first, without their events.
func (r *Recorder) Incidents() []Incident {
	r.mu.Lock()
	out := make([]Incident, 0, len(r.incidents))
	for i := len(r.incidents) - 1; i >= 0; i-- {
		out = append(out, r.view(r.incidents[i], false))
	}
	r.mu.Unlock()
	for i := range out {
		out[i] = r.withImpact(out[i])
	}
	return out
}

// Incident returns one incident with its events, in order.
func (r *Recorder) Incident(id int64) (Incident, bool) {
	r.mu.Lock()
	var v Incident
	found := false
	for _, in := range r.incidents {
		if in.ID == id {
			v, found = r.view(in, true), true
			break
		}
	}
	r.mu.Unlock()
	if !found {
		return Incident{}, false
	}
	v.Events = r.clusterEvents(v)
	return r.withImpact(v), true
}

// Events lists the events kept for upstream ("" for all) at or after
// since, oldest first.
func (r *Recorder) Events(upstream string, since time.Time) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Event{}
	for _, e := range r.events {
		if (upstream == "" || e.Upstream == upstream) && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

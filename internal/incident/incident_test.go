package incident

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// A breaker that flaps through one outage is one incident; it resolves
// only after its conditions have been clear for the quiet period; the
// impact is what grew while it was open; an info event opens nothing.
func TestOneIncidentPerOutage(t *testing.T) {
	failed := 0.0
	r := NewRecorder(Config{ResolveAfter: 2 * time.Minute}, func(string) map[string]float64 {
		return map[string]float64{"failed_fast": failed}
	})
	t0 := time.Date(2026, 11, 25, 12, 3, 10, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	failed = 7 // before the incident: not its impact
	r.Record(Event{Time: at(-time.Minute), Type: ShiftAdded, Upstream: "pay", Severity: Info, Summary: "shift"})
	if len(r.Incidents()) != 0 {
		t.Fatal("an info event opened an incident")
	}
	for i := range 5 {
		d := time.Duration(i) * 10 * time.Second
		r.Record(Event{Time: at(d), Type: BreakerOpened, Upstream: "pay", Severity: Error, Summary: "breaker opened"})
		r.Record(Event{Time: at(d + 5*time.Second), Type: BreakerHalfOpen, Upstream: "pay", Severity: Info, Summary: "half-open"})
		r.Record(Event{Time: at(d + 6*time.Second), Type: BreakerClosed, Upstream: "pay", Severity: Info, Summary: "closed"})
	}
	r.Record(Event{Time: at(50 * time.Second), Type: BreakerOpened, Upstream: "pay", Severity: Error, Summary: "breaker opened"})
	failed = 40
	r.Record(Event{Time: at(time.Minute), Type: BreakerOpened, Upstream: "other", Severity: Warning, Summary: "x"})
	ins := r.Incidents()
	if len(ins) != 2 || ins[1].Upstream != "pay" || len(ins[1].Conditions) != 1 || ins[1].Impact["failed_fast"] != 33 {
		t.Fatalf("incidents %+v", ins)
	}
	r.Tick(at(10 * time.Minute))
	if in, _ := r.Incident(1); in.State() != "open" {
		t.Fatal("resolved while its breaker is still open")
	}
	r.Record(Event{Time: at(11 * time.Minute), Type: BreakerClosed, Upstream: "pay", Severity: Info, Summary: "closed"})
	r.Tick(at(12*time.Minute + 59*time.Second))
	if in, _ := r.Incident(1); in.State() != "open" {
		t.Fatal("resolved before the quiet period after the last condition cleared")
	}
	failed = 50
	r.Tick(at(13 * time.Minute))
	in, _ := r.Incident(1)
	if in.State() != "resolved" || len(in.Events) != 17 || in.Severity != Error {
		t.Fatalf("incident %+v, want resolved with 17 events", in)
	}
	if in.Impact["failed_fast"] != 43 {
		t.Errorf("impact %v, want failed_fast 43 (50 at resolve less 7 at open)", in.Impact)
	}
	failed = 90
	if again, _ := r.Incident(1); again.Impact["failed_fast"] != 43 {
		t.Errorf("a resolved incident's impact moved to %v", again.Impact)
	}
	r.Record(Event{Time: at(14 * time.Minute), Type: BreakerOpened, Upstream: "pay", Severity: Error, Summary: "again"})
	if ins := r.Incidents(); len(ins) != 3 || ins[0].ID != 3 {
		t.Errorf("a new outage after the resolve did not open a new incident: %+v", ins)
	}
	if evs := r.Events("pay", at(0)); len(evs) != 18 || evs[0].Incident != 1 {
		t.Errorf("%d events for pay since t0, first %+v", len(evs), evs[0])
	}

	var b bytes.Buffer
	if err := WriteTimeline(&b, in, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"incident 1  pay  resolved  error", "12:03:10  pay: breaker opened", "impact: failed fast 43"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	_ = WriteTimeline(&b, in, true)
	if !strings.Contains(b.String(), "| 12:03:10 | breaker.opened: breaker opened |") {
		t.Errorf("markdown timeline:\n%s", b.String())
	}
}

// A pause holds its incident open until the pause is over.
func TestPauseConditionEnds(t *testing.T) {
	r := NewRecorder(Config{ResolveAfter: time.Minute}, nil)
	t0 := time.Unix(1000, 0)
	r.Record(Event{Time: t0, Type: UpstreamPaused, Upstream: "sms", Severity: Warning, Pause: 5 * time.Minute, Summary: "paused"})
	r.Tick(t0.Add(4 * time.Minute))
	if in, _ := r.Incident(1); in.State() != "open" || len(in.Conditions) != 1 || in.Conditions[0] != "paused" {
		t.Fatalf("during the pause: %+v", in)
	}
	r.Tick(t0.Add(5*time.Minute + 59*time.Second))
	if in, _ := r.Incident(1); in.State() != "open" {
		t.Fatal("resolved before the quiet period after the pause")
	}
	r.Tick(t0.Add(6 * time.Minute))
	if in, _ := r.Incident(1); in.State() != "resolved" {
		t.Fatal("not resolved a quiet period after the pause ended")
	}
}

// The rings are bounded.
func TestRecorderBounds(t *testing.T) {
	r := NewRecorder(Config{KeepEvents: 10, KeepIncidents: 2, ResolveAfter: time.Second}, nil)
	t0 := time.Unix(0, 0)
	for i := range 50 {
		at := t0.Add(time.Duration(i) * time.Minute)
		r.Record(Event{Time: at, Type: JobsDeadLettered, Upstream: "u", Severity: Warning})
		r.Tick(at.Add(2 * time.Second))
	}
	if n, m := len(r.Events("", time.Time{})), len(r.Incidents()); n != 10 || m != 2 {
		t.Errorf("kept %d events and %d incidents, want 10 and 2", n, m)
	}
}

// Publish never blocks: Run records what it queued, and a full queue
// drops and counts rather than wait.
func TestPublishNeverBlocks(t *testing.T) {
	r := NewRecorder(Config{}, nil)
	for range cap(r.queue) + 10 {
		r.Publish(Event{Type: CacheStale, Upstream: "u", Severity: Info})
	}
	if r.Dropped() != 10 {
		t.Errorf("dropped %d, want 10", r.Dropped())
	}
	stop := make(chan struct{})
	go r.Run(stop, nil)
	defer close(stop)
	for deadline := time.Now().Add(5 * time.Second); len(r.Events("u", time.Time{})) < cap(r.queue); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Run recorded %d of %d queued events", len(r.Events("u", time.Time{})), cap(r.queue))
		}
	}
}

// A storm of one event is a line per period, saying how many it held.
func TestThrottle(t *testing.T) {
	r := NewRecorder(Config{}, nil)
	th := Throttle(recordNow{r}, time.Minute)
	t0 := time.Unix(0, 0)
	for i := range 100 {
		th.Publish(Event{Time: t0.Add(time.Duration(i) * time.Second), Type: JobsDeadLettered, Upstream: "u", Severity: Warning})
	}
	th.Publish(Event{Time: t0, Type: JobsDeadLettered, Upstream: "other", Severity: Warning})
	evs := r.Events("u", time.Time{})
	if len(evs) != 2 || evs[1].Evidence["suppressed"] != 59 {
		t.Errorf("events %+v, want two, the second saying 59 were held", evs)
	}
	if len(r.Events("other", time.Time{})) != 1 {
		t.Error("another upstream's event was held back")
	}
}

type recordNow struct{ r *Recorder }

func (p recordNow) Publish(e Event) { p.r.Record(e) }

// memStore is a Store in memory, as the job store's records are.
type memStore struct {
	events    map[int64]Event
	incidents map[int64]Incident
}

func (m *memStore) Save(_ context.Context, evs []Event, ins []Incident) error {
	for _, e := range evs {
		m.events[e.ID] = e
	}
	for _, in := range ins {
		m.incidents[in.ID] = in
	}
	return nil
}

func (m *memStore) Load(context.Context, int, int) ([]Event, []Incident, error) {
	var evs []Event
	var ins []Incident
	for _, id := range slices.Sorted(maps.Keys(m.events)) {
		evs = append(evs, m.events[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.incidents)) {
		// as JSON would: unexported fields do not survive
		b, _ := json.Marshal(m.incidents[id])
		var in Incident
		_ = json.Unmarshal(b, &in)
		ins = append(ins, in)
	}
	return evs, ins, nil
}

// An incident open when Seawall stops is open after it starts, with its
// events and the impact counted so far, and resolves once, later; ids go
// on from where they were.
func TestRestoreCarriesAnOpenIncident(t *testing.T) {
	store := &memStore{events: map[int64]Event{}, incidents: map[int64]Incident{}}
	counter := 5.0
	impact := func(string) map[string]float64 { return map[string]float64{"failed_fast": counter} }
	r := NewRecorder(Config{ResolveAfter: time.Minute}, impact)
	if err := r.Restore(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-30 * time.Second)
	r.Record(Event{Time: t0, Type: BreakerOpened, Upstream: "pay", Severity: Error, Summary: "opened"})
	counter = 25
	r.save()
	if len(store.events) != 1 || store.incidents[1].Impact["failed_fast"] != 20 {
		t.Fatalf("saved %+v", store)
	}

	counter = 0 // a new process: the metrics start again
	r2 := NewRecorder(Config{ResolveAfter: time.Minute}, impact)
	if err := r2.Restore(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	in, ok := r2.Incident(1)
	if !ok || in.State() != "open" || len(in.Events) != 1 || in.Impact["failed_fast"] != 20 {
		t.Fatalf("restored %+v", in)
	}
	counter = 3
	r2.Record(Event{Time: t0.Add(time.Second), Type: BreakerClosed, Upstream: "pay", Severity: Info, Summary: "closed"})
	if in, _ := r2.Incident(1); in.Impact["failed_fast"] != 23 || len(in.Events) != 2 || in.Events[1].ID != 2 {
		t.Errorf("after the restart: %+v", in)
	}
	r2.Tick(t0.Add(2 * time.Minute))
	r2.save()
	if got := store.incidents[1]; got.Resolved == nil || got.Impact["failed_fast"] != 23 {
		t.Errorf("saved after resolving: %+v", got)
	}
}

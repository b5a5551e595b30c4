package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/usage"
)

// Record is a small JSON document kept beside the jobs, by kind and id:
// the incident events and incidents, so that they survive a restart.
type Record struct {
	ID   int64
	Body []byte
}

// Records keeps Records. The job store is one when it is open.
type Records interface {
	// PutRecords writes recs of kind, replacing those with the same id.
	PutRecords(ctx context.Context, kind string, recs []Record) error
	// ListRecords returns the newest limit records of kind, oldest first.
	ListRecords(ctx context.Context, kind string, limit int) ([]Record, error)
	// TrimRecords deletes all but the newest keep records of kind.
	TrimRecords(ctx context.Context, kind string, keep int) error
	// DeleteRecord deletes one record.
	DeleteRecord(ctx context.Context, kind string, id int64) error
}

// recordsDDL is the records' table, the same in SQLite and PostgreSQL.
const recordsDDL = `CREATE TABLE IF NOT EXISTS seawall_record (
	kind TEXT NOT NULL,
	id   BIGINT NOT NULL,
	body TEXT NOT NULL,
	PRIMARY KEY (kind, id)
)`

// recordSQL is the statements of one database, whose placeholders differ.
type recordSQL struct {
	put, list, trim, del string
	// requeueFirst schedules a job cut off by the end of the shutdown
	// grace at its acceptance, so that it is fetched first
	// (riverStore.firstAtNextStart).
	requeueFirst string
}

var (
	recordsSQLite = recordSQL{
		put:  `INSERT INTO seawall_record (kind, id, body) VALUES (?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`,
		list: `SELECT id, body FROM seawall_record WHERE kind = ? ORDER BY id DESC LIMIT ?`,
		trim: `DELETE FROM seawall_record WHERE kind = ? AND id <= (SELECT id FROM seawall_record WHERE kind = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
		del:  `DELETE FROM seawall_record WHERE kind = ? AND id = ?`,
		requeueFirst: `UPDATE river_job SET scheduled_at = created_at, state = 'available'
			WHERE id = ? AND state IN ('available', 'scheduled')`,
	}
	recordsPostgres = recordSQL{
		put:  `INSERT INTO seawall_record (kind, id, body) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`,
		list: `SELECT id, body FROM seawall_record WHERE kind = $1 ORDER BY id DESC LIMIT $2`,
		trim: `DELETE FROM seawall_record WHERE kind = $1 AND id <= (SELECT id FROM seawall_record WHERE kind = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)`,
		del:  `DELETE FROM seawall_record WHERE kind = $1 AND id = $2`,
		requeueFirst: `UPDATE river_job SET scheduled_at = created_at, state = 'available'
			WHERE id = $1 AND state IN ('available', 'scheduled')`,
	}
)

// recordDB is what the records need of a database.
type recordDB struct {
	exec  func(ctx context.Context, sql string, args ...any) error
	query func(ctx context.Context, sql string, args ...any) ([]Record, error)
	sql   recordSQL
}

func (s *riverStore[TTx]) PutRecords(ctx context.Context, kind string, recs []Record) error {
	for _, r := range recs {
		if err := s.records.exec(ctx, s.records.sql.put, kind, r.ID, string(r.Body)); err != nil {
			return fmt.Errorf("keeping %s %d: %w", kind, r.ID, err)
		}
	}
	return nil
}

func (s *riverStore[TTx]) ListRecords(ctx context.Context, kind string, limit int) ([]Record, error) {
	recs, err := s.records.query(ctx, s.records.sql.list, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("reading %s records: %w", kind, err)
	}
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs, nil
}

func (s *riverStore[TTx]) TrimRecords(ctx context.Context, kind string, keep int) error {
	return s.records.exec(ctx, s.records.sql.trim, kind, kind, keep)
}

func scanRecords(next func() bool, scan func(...any) error, rowsErr func() error) ([]Record, error) {
	var out []Record
	for next() {
		var r Record
		var body string
		if err := scan(&r.ID, &body); err != nil {
			return nil, err
		}
		r.Body = []byte(body)
		out = append(out, r)
	}
	return out, rowsErr()
}

func (s *riverStore[TTx]) DeleteRecord(ctx context.Context, kind string, id int64) error {
	return s.records.exec(ctx, s.records.sql.del, kind, id)
}

// PendingNotices keeps the incident notices not yet delivered, by sink,
// so that none is lost on a restart.
func PendingNotices(r Records) incident.Pending { return pendingNotices{r} }

type pendingNotices struct{ r Records }

func (p pendingNotices) Put(ctx context.Context, sink string, n incident.Notice) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return p.r.PutRecords(ctx, "notice-"+sink, []Record{{ID: n.Seq, Body: b}})
}

func (p pendingNotices) Done(ctx context.Context, sink string, seq int64) error {
	return p.r.DeleteRecord(ctx, "notice-"+sink, seq)
}

func (p pendingNotices) List(ctx context.Context, sink string) ([]incident.Notice, error) {
	recs, err := p.r.ListRecords(ctx, "notice-"+sink, 1000)
	if err != nil {
		return nil, err
	}
	out := make([]incident.Notice, 0, len(recs))
	for _, r := range recs {
		var n incident.Notice
		if json.Unmarshal(r.Body, &n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// IncidentStore keeps the incident events and incidents as records, the
// newest keepEvents and keepIncidents of them.
func IncidentStore(r Records, keepEvents, keepIncidents int) incident.Store {
	return incidentStore{r: r, keepEvents: keepEvents, keepIncidents: keepIncidents}
}

type incidentStore struct {
	r                         Records
	keepEvents, keepIncidents int
}

const (
	eventRecord    = "incident-event"
	incidentRecord = "incident"
)

func (s incidentStore) Save(ctx context.Context, events []incident.Event, incidents []incident.Incident) error {
	put := func(kind string, keep int, n int, rec func(i int) (int64, any)) error {
		if n == 0 {
			return nil
		}
		recs := make([]Record, n)
		for i := range n {
			id, v := rec(i)
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			recs[i] = Record{ID: id, Body: b}
		}
		if err := s.r.PutRecords(ctx, kind, recs); err != nil {
			return err
		}
		return s.r.TrimRecords(ctx, kind, keep)
	}
	return errors.Join(
		put(eventRecord, s.keepEvents, len(events), func(i int) (int64, any) { return events[i].ID, events[i] }),
		put(incidentRecord, s.keepIncidents, len(incidents), func(i int) (int64, any) { return incidents[i].ID, incidents[i] }))
}

func (s incidentStore) Load(ctx context.Context, events, incidents int) ([]incident.Event, []incident.Incident, error) {
	evRecs, err := s.r.ListRecords(ctx, eventRecord, events)
	if err != nil {
		return nil, nil, err
	}
	inRecs, err := s.r.ListRecords(ctx, incidentRecord, incidents)
	if err != nil {
		return nil, nil, err
	}
	evs := make([]incident.Event, 0, len(evRecs))
	for _, r := range evRecs {
		var e incident.Event
		if json.Unmarshal(r.Body, &e) == nil {
			evs = append(evs, e)
		}
	}
	ins := make([]incident.Incident, 0, len(inRecs))
	for _, r := range inRecs {
		var in incident.Incident
		if json.Unmarshal(r.Body, &in) == nil {
			ins = append(ins, in)
		}
	}
	return evs, ins, nil
}

// UsageStore keeps the usage meters' states as records, one per upstream.
func UsageStore(r Records) usage.Store { return usageStore{r} }

type usageStore struct{ r Records }

const usageRecord = "usage"

// usageID is an upstream's record id: a hash of its name.
func usageID(upstream string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(upstream))
	return int64(h.Sum64() & math.MaxInt64) //nolint:gosec // masked to 63 bits: no overflow
}

type usageState struct {
	Upstream string      `json:"upstream"`
	State    usage.State `json:"state"`
}

func (s usageStore) Save(ctx context.Context, states map[string]usage.State) error {
	recs := make([]Record, 0, len(states))
	for name, st := range states {
		b, err := json.Marshal(usageState{name, st})
		if err != nil {
			return err
		}
		recs = append(recs, Record{ID: usageID(name), Body: b})
	}
	return s.r.PutRecords(ctx, usageRecord, recs)
}

func (s usageStore) Load(ctx context.Context) (map[string]usage.State, error) {
	recs, err := s.r.ListRecords(ctx, usageRecord, 100000)
	if err != nil {
		return nil, err
	}
	out := make(map[string]usage.State, len(recs))
	for _, r := range recs {
		var st usageState
		if json.Unmarshal(r.Body, &st) == nil {
			out[st.Upstream] = st.State
		}
	}
	return out, nil
}

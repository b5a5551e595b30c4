package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// legacyArgs is a Delivery as jobs were stored before storedArgs: its own
// fields at the top of args, with the same unique fields.
type legacyArgs Delivery

func (legacyArgs) Kind() string { return Delivery{}.Kind() }

// withClient runs fn with the River client under s, whichever store it is.
func withClient(t *testing.T, s Store, pg func(*river.Client[pgx.Tx]), lite func(*river.Client[*sql.Tx])) {
	t.Helper()
	switch rs := s.(type) {
	case *riverStore[pgx.Tx]:
		pg(rs.client)
	case *riverStore[*sql.Tx]:
		lite(rs.client)
	default:
		t.Fatalf("store %T is not River's", s)
	}
}

// storedRow is job id's args as the store holds them.
func storedRow(t *testing.T, s Store, id int64) []byte {
	t.Helper()
	var args []byte
	withClient(t, s,
		func(c *river.Client[pgx.Tx]) { args = jobArgs(t, c, id) },
		func(c *river.Client[*sql.Tx]) { args = jobArgs(t, c, id) })
	return args
}

func jobArgs[TTx any](t *testing.T, c *river.Client[TTx], id int64) []byte {
	t.Helper()
	row, err := c.JobGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return row.EncodedArgs
}

func insertLegacy[TTx any](t *testing.T, c *river.Client[TTx], d Delivery) int64 {
	t.Helper()
	res, err := c.Insert(context.Background(), legacyArgs(d), &river.InsertOpts{
		Queue: d.Upstream, MaxAttempts: testConfig.MaxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByQueue: true, ByState: uniqueStates},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Job.ID
}

// A job's args hold the two fields River's unique keys are made of and
// the delivery as one string, so that PostgreSQL's GIN index on args
// makes a handful of entries of a job rather than one for every field and
// header. The delivery reads back whole.
func TestArgsHoldTheDeliveryAsOneString(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		s := open(t, newRecorder()) // not started: the job stays as written
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
		d := delivery("key-1")
		d.Header = map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"app/1.0"}, "X-Trace": {"a", "b"}}
		d.Scope, d.Fingerprint, d.Token, d.RequestID, d.Callback, d.Deferred = "POST /v1/send", "fp", "tok", "req", "https://app.example/cb", true
		j, _, err := s.Enqueue(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(storedRow(t, s, j.ID), &top); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range top {
				if !yield(k) {
					return
				}
			}
		})
		if want := []string{"delivery", "idempotency_key", "scope"}; !slices.Equal(keys, want) {
			t.Errorf("args keys %v, want %v", keys, want)
		}
		var whole string
		if err := json.Unmarshal(top["delivery"], &whole); err != nil {
			t.Errorf("args' delivery is not one string: %s", top["delivery"])
		}
		got, err := s.Get(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Delivery, d) {
			t.Errorf("read back %+v, want %+v", got.Delivery, d)
		}
	})
}

// Jobs stored before storedArgs (a delivery's fields at the top of args)
// keep working: their key still finds them, they read back whole, and
// they are delivered whole.
func TestJobsStoredInTheEarlierFormStillWork(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		rec := newRecorder()
		var delivered Delivery
		rec.set(func(_ int64, _ int, d Delivery) error { delivered = d; return nil })
		s := open(t, rec)
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
		old := delivery("key-old")
		old.Scope, old.Fingerprint, old.Token, old.RequestID = "POST /v1/send", "fp-old", "tok-old", "req-old"
		var id int64
		withClient(t, s,
			func(c *river.Client[pgx.Tx]) { id = insertLegacy(t, c, old) },
			func(c *river.Client[*sql.Tx]) { id = insertLegacy(t, c, old) })
		var top map[string]json.RawMessage
		if err := json.Unmarshal(storedRow(t, s, id), &top); err != nil || top["upstream"] == nil {
			t.Fatalf("the earlier form was not written: %s (%v)", storedRow(t, s, id), err)
		}

		again := old
		again.Fingerprint, again.Token, again.RequestID = "fp-new", "tok-new", "req-new"
		j, existing, err := s.Enqueue(context.Background(), again)
		if err != nil || !existing || j.ID != id {
			t.Fatalf("enqueue with the old job's key = job %d, existing %v, %v; want job %d", j.ID, existing, err, id)
		}
		if !reflect.DeepEqual(j.Delivery, old) {
			t.Errorf("the old job read back as %+v, want %+v", j.Delivery, old)
		}

		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitState(t, s, id, Succeeded)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if !reflect.DeepEqual(delivered, old) {
			t.Errorf("delivered %+v, want %+v", delivered, old)
		}
	})
}

// FuzzDecodeArgs: any args decode without panicking, and a delivery
// written in either form reads back the same.
func FuzzDecodeArgs(f *testing.F) {
	f.Add([]byte(`{"upstream":"api","method":"POST","path":"/x","idempotency_key":"k"}`))
	f.Add([]byte(`{"idempotency_key":"k","scope":"POST /x","delivery":"{\"upstream\":\"api\",\"method\":\"POST\"}"}`))
	f.Add([]byte(`{"delivery":"not json"}`))
	f.Add([]byte(`{"delivery":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Delivery
		if decodeArgs(b, &d) != nil {
			return
		}
		args, err := storedFrom(d)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		legacy, err := json.Marshal(legacyArgs(d))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(d) // nil and empty compare alike
		for _, form := range [][]byte{stored, legacy} {
			var back Delivery
			if err := decodeArgs(form, &back); err != nil {
				t.Fatalf("%s: %v", form, err)
			}
			if got, _ := json.Marshal(back); string(got) != string(want) {
				t.Fatalf("%s read back as %s, want %s", form, got, want)
			}
		}
	})
}

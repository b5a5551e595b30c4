package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/incident"
)

// Records are kept by kind and id, replaced by id, listed newest last,
// trimmed to the newest, and there again when the store is reopened.
func TestRecordsSurviveReopen(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		s := open(t, newRecorder())
		r := s.(Records)
		var recs []Record
		for i := 1; i <= 5; i++ {
			recs = append(recs, Record{ID: int64(i), Body: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		if err := r.PutRecords(ctx, "event", recs); err != nil {
			t.Fatal(err)
		}
		if err := r.PutRecords(ctx, "event", []Record{{ID: 5, Body: []byte(`{"n":"five"}`)}}); err != nil {
			t.Fatal(err)
		}
		if err := r.PutRecords(ctx, "incident", []Record{{ID: 1, Body: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		if err := r.TrimRecords(ctx, "event", 3); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		s = open(t, newRecorder())
		defer func() { _ = s.Stop(ctx) }()
		got, err := s.(Records).ListRecords(ctx, "event", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].ID != 3 || string(got[2].Body) != `{"n":"five"}` {
			t.Errorf("after reopening, events %+v, want 3, 4 and the replaced 5", got)
		}
		if got, _ := s.(Records).ListRecords(ctx, "event", 2); len(got) != 2 || got[0].ID != 4 {
			t.Errorf("the newest two: %+v", got)
		}
		if got, _ := s.(Records).ListRecords(ctx, "incident", 10); len(got) != 1 {
			t.Errorf("incidents %+v", got)
		}
		if err := s.(Records).DeleteRecord(ctx, "event", 4); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.(Records).ListRecords(ctx, "event", 10); len(got) != 2 || got[0].ID != 3 || got[1].ID != 5 {
			t.Errorf("after deleting 4: %+v", got)
		}
	})
}

// A job left waiting past the threshold is an event, and so is its
// queue getting back under it.
func TestWatchQueueAge(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		s := open(t, newRecorder()) // not started: nothing is delivered
		defer func() { _ = s.Stop(context.Background()) }()
		j, _, err := s.Enqueue(context.Background(), delivery(""))
		if err != nil {
			t.Fatal(err)
		}
		rec := incident.NewRecorder(incident.Config{}, nil)
		stop := make(chan struct{})
		defer close(stop)
		go rec.Run(stop, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go WatchQueueAge(ctx, s, 50*time.Millisecond, 300*time.Millisecond, rec)
		wait := func(typ string) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); len(rec.Events("", time.Time{})) == 0 || rec.Events("", time.Time{})[len(rec.Events("", time.Time{}))-1].Type != typ; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no %s event: %+v", typ, rec.Events("", time.Time{}))
				}
			}
		}
		wait(incident.QueueAgeHigh)
		if ins := rec.Incidents(); len(ins) != 1 || ins[0].Conditions[0] != "queue age" {
			t.Errorf("incidents %+v", ins)
		}
		if _, err := s.Cancel(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		wait(incident.QueueAgeOK)
	})
}

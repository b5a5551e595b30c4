package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineRecorder is a ResponseWriter that keeps the write deadlines set
// on it, as http.ResponseController sets them.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set []time.Time
}

func (r *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	r.set = append(r.set, t)
	return nil
}

// A write deadline is moved only when it would move by more than 1/64 of
// the write timeout, and never kept later than the overall bound.
func TestWriteDeadlineMovesOnlyWhenItMatters(t *testing.T) {
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	var d deadlines
	d.start(http.ResponseWriter(w), 6400*time.Millisecond, time.Now()) // 1/64: 100 ms
	d.renewWrite()
	d.renewWrite()
	d.end()
	if len(w.set) != 1 {
		t.Fatalf("%d deadlines set for writes in quick succession, want 1 (the first): %v", len(w.set), w.set)
	}
	time.Sleep(150 * time.Millisecond)
	d.renewWrite()
	if len(w.set) != 2 || !w.set[1].After(w.set[0].Add(100*time.Millisecond)) {
		t.Fatalf("after 150 ms a write's deadline was not moved on: %v", w.set)
	}
	hard := time.Now().Add(time.Second)
	d.bound(hard)
	d.renewWrite()
	if last := w.set[len(w.set)-1]; !last.Equal(hard) {
		t.Fatalf("deadline %v after bound(%v), want the bound", last, hard)
	}
}

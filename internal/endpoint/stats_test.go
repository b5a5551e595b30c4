package endpoint

import (
	"sync"
	"testing"
	"time"
)

// The window counts calls and failures and reads the p90 latency within
// the sketch's accuracy; a slice rotated out is forgotten.
func TestStatsWindow(t *testing.T) {
	s := NewStats("a", "z")
	for i := 1; i <= 100; i++ {
		s.Record(time.Duration(i)*time.Millisecond, i%10 == 0)
	}
	f := s.Figures()
	if f.ID != "a" || f.Zone != "z" || f.Calls != 100 || f.Failures != 10 {
		t.Fatalf("figures %+v, want 100 calls, 10 failures", f)
	}
	if lo, hi := 89*time.Millisecond, 92*time.Millisecond; f.Latency < lo || f.Latency > hi {
		t.Errorf("p90 of 1..100 ms read as %s", f.Latency)
	}
	for range statBuckets - 1 {
		s.Rotate()
	}
	if f := s.Figures(); f.Calls != 100 {
		t.Errorf("the window forgot calls before it was full: %+v", f)
	}
	s.Rotate()
	if f := s.Figures(); f.Calls != 0 || f.Latency != 0 {
		t.Errorf("after a whole window of rotations: %+v, want empty", f)
	}
}

// Record, Rotate and Figures may run at once (go test -race).
func TestStatsConcurrent(t *testing.T) {
	s := NewStats("a", "")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 2000 {
				s.Record(time.Millisecond, i%3 == 0)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			s.Rotate()
			_ = s.Figures()
		}
	})
	wg.Wait()
	if f := s.Figures(); f.Calls > 8000 || f.Failures > f.Calls {
		t.Errorf("figures %+v", f)
	}
}

// The hot path's cost, for the closing note.
func BenchmarkStatsRecord(b *testing.B) {
	s := NewStats("a", "")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Record(time.Duration(i%1000)*time.Microsecond, i%50 == 0)
	}
}

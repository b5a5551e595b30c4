package ratelimit

import (
	"context"
	"testing"
	"time"
)

// lateStore is a shared store whose first slots are already past by
// late when they are given, as when the call that asked slept past them
// (a busy host): each later one is on time.
type lateStore struct {
	late    time.Duration
	lateFor int // how many slots are given late
	given   []time.Time
	paused  []time.Duration
}

func (s *lateStore) Reserve(_ context.Context, _ string, _ time.Duration, _ int, _ time.Duration, _ time.Time) (time.Time, time.Duration, bool, bool, error) {
	at := time.Now()
	if len(s.given) < s.lateFor {
		at = at.Add(-s.late)
	}
	s.given = append(s.given, at)
	return at, 0, true, false, nil
}
func (s *lateStore) Pause(_ context.Context, d time.Duration) error {
	s.paused = append(s.paused, d)
	return nil
}
func (s *lateStore) PausedUntil() time.Time             { return time.Time{} }
func (s *lateStore) Share() (int, int)                  { return 0, 1 }
func (s *lateStore) Tell(context.Context, Signal) error { return nil }
func (s *lateStore) Hear(func(Signal))                  {}
func (s *lateStore) Back(_ context.Context, until time.Time, _ time.Duration) (time.Time, error) {
	return until, nil
}

// A call that wakes too late for its shared slot (past three quarters of
// the headroom's room before the next slot, which may be another
// replica's) gives it up and takes a later one; a little late, it goes.
// It gives up at most lateTries slots, then goes late all the same; at a
// fast pace (150/s: 0.35 ms of room, under what timers keep), none.
func TestGlobalGivesUpASlotWokenTooLate(t *testing.T) {
	for _, tc := range []struct {
		rate    float64
		late    time.Duration
		lateFor int
		want    int // slots asked for
	}{
		{rate: 20, late: time.Millisecond, lateFor: 1, want: 1}, // the room is 2.6 ms
		{rate: 20, late: 3 * time.Millisecond, lateFor: 1, want: 2},
		{rate: 20, late: 3 * time.Millisecond, lateFor: 10, want: 1 + lateTries},
		{rate: 150, late: 3 * time.Millisecond, lateFor: 10, want: 1},
	} {
		store := &lateStore{late: tc.late, lateFor: tc.lateFor}
		g := NewGlobal(GlobalConfig{Config: Config{Rate: tc.rate, Burst: 1, Headroom: DefaultHeadroom}}, store)
		s, err := g.Wait(context.Background(), "", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(store.given) != tc.want {
			t.Errorf("%v/s, slots %s late: %d asked for, want %d", tc.rate, tc.late, len(store.given), tc.want)
		}
		if last := store.given[len(store.given)-1]; !s.At.Equal(last) {
			t.Errorf("slots %s late: the call went at %s, want the last slot given, %s", tc.late, s.At, last)
		}
	}
}

// A call that went out too late after its slot (held up after the check,
// on its way to the wire) holds every replica's calls, through the
// shared pause, until the vendor's interval after it; a little late, or
// at a fast pace, nothing is held.
func TestGlobalHoldsTheOthersAfterALateCall(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		late time.Duration
		hold bool
	}{
		{20, time.Millisecond, false},
		{20, 3 * time.Millisecond, true},
		{150, 3 * time.Millisecond, false},
	} {
		store := &lateStore{}
		g := NewGlobal(GlobalConfig{Config: Config{Rate: tc.rate, Burst: 1, Headroom: DefaultHeadroom}}, store)
		s, err := g.Wait(context.Background(), "", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		left := s.At.Add(tc.late)
		g.Sent("", s, left)
		switch {
		case !tc.hold && len(store.paused) > 0:
			t.Errorf("%v/s, a call %s late: held the others %v, want nothing held", tc.rate, tc.late, store.paused)
		case tc.hold && len(store.paused) != 1:
			t.Errorf("%v/s, a call %s late: %d holds, want one", tc.rate, tc.late, len(store.paused))
		case tc.hold:
			// Until 50 ms (the vendor's interval) after the call left.
			vendorIv := time.Second / 20
			if end := time.Now().Add(store.paused[0]); end.After(left.Add(vendorIv+5*time.Millisecond)) || end.Before(left.Add(vendorIv-10*time.Millisecond)) {
				t.Errorf("%v/s, a call %s late: held until %s after it left, want %s", tc.rate, tc.late, end.Sub(left), vendorIv)
			}
		}
	}
}

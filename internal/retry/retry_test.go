package retry

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffIsCappedFullJitter(t *testing.T) {
	p := Policy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for retry, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 80: time.Second} {
		var sawLow, sawHigh bool
		for i := 0; i < 2000; i++ {
			d := p.Backoff(retry)
			if d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", retry, d, ceiling)
			}
			sawLow = sawLow || d < ceiling/4
			sawHigh = sawHigh || d > ceiling*3/4
		}
		if !sawLow || !sawHigh {
			t.Errorf("Backoff(%d) did not spread over [0, %v] in 2000 draws", retry, ceiling)
		}
	}
}

func TestReplayable(t *testing.T) {
	withKey := http.Header{"Idempotency-Key": {"k1"}}
	tests := []struct {
		method string
		h      http.Header
		all    bool
		want   bool
	}{
		{"GET", nil, false, true},
		{"PUT", nil, false, true},
		{"DELETE", nil, false, true},
		{"POST", nil, false, false},
		{"PATCH", nil, false, false},
		{"POST", withKey, false, true},
		{"POST", nil, true, true},
	}
	for _, tt := range tests {
		h := tt.h
		if h == nil {
			h = http.Header{}
		}
		if got := (Policy{AllMethods: tt.all}).Replayable(tt.method, h); got != tt.want {
			t.Errorf("Replayable(%s, key=%v, all=%v) = %v, want %v", tt.method, h.Get("Idempotency-Key") != "", tt.all, got, tt.want)
		}
	}
}

func TestRetryableStatus(t *testing.T) {
	p := Policy{Statuses: []StatusRange{{429, 429}, {502, 504}}}
	for code, want := range map[int]bool{429: true, 502: true, 503: true, 504: true, 500: false, 200: false, 404: false} {
		if got := p.RetryableStatus(code); got != want {
			t.Errorf("RetryableStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestBudgetBoundsRetriesToRatio(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBudget(0.2, 0, func() time.Time { return now })
	granted := 0
	for i := 0; i < 100; i++ {
		b.Request()
		for b.Withdraw() {
			granted++
		}
	}
	if granted != 20 {
		t.Errorf("granted %d retries for 100 requests at ratio 0.2, want 20", granted)
	}
	now = now.Add(11 * time.Second)
	if b.Withdraw() {
		t.Error("retry granted with no recent requests and no minimum")
	}
}

func TestBudgetMinimumAllowsQuietRetries(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBudget(0, 1, func() time.Time { return now })
	granted := 0
	for b.Withdraw() {
		granted++
	}
	if granted != 10 {
		t.Errorf("granted %d retries with min 1/s over a 10s window, want 10", granted)
	}
}

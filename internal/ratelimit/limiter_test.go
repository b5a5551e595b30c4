package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLocalWaitsWithinMaxWait(t *testing.T) {
	l := NewLocal(Config{Rate: 200, Burst: 1})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := l.Wait(ctx, "", time.Second); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestLocalWaitHonoursContextDeadline(t *testing.T) {
	l := NewLocal(Config{Rate: 0.001, Burst: 1})
	_, _ = l.Wait(context.Background(), "", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Wait(ctx, "", time.Hour); !errors.Is(err, ErrExceeded) {
		t.Errorf("err = %v, want ErrExceeded at once since the slot is past the deadline", err)
	}
}

func TestPauseFor(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"retry-after seconds", 429, map[string]string{"Retry-After": "2"}, 2 * time.Second, true},
		{"retry-after date", 503, map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second, true},
		{"retry-after past date", 503, map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0, true},
		{"retry-after garbage", 429, map[string]string{"Retry-After": "soon"}, 0, false},
		{"retry-after negative", 429, map[string]string{"Retry-After": "-5"}, 0, false},
		{"retry-after huge", 429, map[string]string{"Retry-After": "99999999999"}, MaxPause, true},
		{"ignored on 500", 500, map[string]string{"Retry-After": "2"}, 0, false},
		{"ignored on 200", 200, map[string]string{"Retry-After": "2"}, 0, false},
		{"ratelimit structured", 429, map[string]string{"RateLimit": `"default";r=0;t=7`}, 7 * time.Second, true},
		{"ratelimit with quota left", 429, map[string]string{"RateLimit": `"default";r=3;t=7`}, 0, false},
		{"ratelimit old form", 429, map[string]string{"RateLimit": "limit=10, remaining=0, reset=4"}, 4 * time.Second, true},
		{"ratelimit-reset", 429, map[string]string{"RateLimit-Reset": "3"}, 3 * time.Second, true},
		{"x-ratelimit-reset delta", 429, map[string]string{"X-RateLimit-Reset": "5"}, 5 * time.Second, true},
		{"x-ratelimit-reset epoch", 429, map[string]string{"X-RateLimit-Reset": "1767323105"}, 60 * time.Second, true},
		{"x-ratelimit-reset far epoch", 429, map[string]string{"X-RateLimit-Reset": "4102444800"}, MaxPause, true},
		{"retry-after wins", 429, map[string]string{"Retry-After": "1", "X-RateLimit-Reset": "9"}, time.Second, true},
		{"nothing", 429, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			got, ok := PauseFor(tt.status, h, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("PauseFor = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzPauseFor(f *testing.F) {
	f.Add("2", `"default";r=0;t=7`, "1767323105")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", "limit=1, remaining=0, reset=NaN", "-1")
	f.Add("", `;;r=0;t=1e400`, "1e18")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, retryAfter, rateLimit, reset string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("RateLimit", rateLimit)
		h.Set("X-RateLimit-Reset", reset)
		for _, status := range []int{429, 503} {
			d, ok := PauseFor(status, h, now)
			if d < 0 || d > MaxPause || (!ok && d != 0) {
				t.Fatalf("PauseFor = %v, %v", d, ok)
			}
		}
	})
}

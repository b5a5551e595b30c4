package ratelimit

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// BenchmarkLocalCall is the limiter's cost per call when it never makes a
// caller wait: a slot, the write reported, and the answer read.
func BenchmarkLocalCall(b *testing.B) {
	l := NewLocal(Config{Rate: 1e9, Burst: 1000, Headroom: DefaultHeadroom})
	ctx := context.Background()
	h := http.Header{"Content-Type": {"application/json"}}
	b.ReportAllocs()
	for b.Loop() {
		s, err := l.Wait(ctx, "", time.Second)
		if err != nil {
			b.Fatal(err)
		}
		l.Sent("", s, s.At)
		l.Observe("", s, Answer{Status: 200, Header: h, Sent: s.At})
	}
}

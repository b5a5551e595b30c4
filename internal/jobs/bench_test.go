package jobs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/testdb"
)

// BenchmarkEnqueue measures durable enqueues, 8 and 64 at a time, on each
// store: accepted/s and the p50/p99 latency of one enqueue (each is on disk
// when it returns).
func BenchmarkEnqueue(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, workers := range []int{8, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", kind, workers), func(b *testing.B) { benchEnqueue(b, kind, workers) })
		}
	}
}

func benchEnqueue(b *testing.B, kind string, workers int) {
	dsn := b.TempDir() + "/jobs.db"
	if kind == "postgres" {
		dsn = testdb.PostgresURL(b)
	}
	s, err := Open(context.Background(), dsn, testConfig, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Stop(context.Background()) }()
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	next := make(chan int)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				if _, _, err := s.Enqueue(context.Background(), delivery("")); err != nil {
					b.Error(err)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "accepted/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

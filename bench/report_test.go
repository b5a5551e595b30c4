package main

import (
	"strings"
	"testing"
	"time"
)

// byRound compares Seawall with its engine within each round, so that a
// round where the host ran slow moves both and the comparison stands.
func TestByRoundComparesWithinEachRound(t *testing.T) {
	r := newResults()
	for _, row := range []struct{ seawall, engine, nginx float64 }{{10, 12, 20}, {8, 6, 10}, {15, 14, 30}} {
		r.add("pass", "seawall", measurement{rps: row.seawall})
		r.add("pass", "proto-fasthttp-h1", measurement{rps: row.engine})
		r.add("pass", "nginx", measurement{rps: row.nginx})
	}
	for _, p99 := range []struct{ seawall, engine, direct time.Duration }{{9, 4, 3}, {5, 7, 4}} {
		r.add("fixed-own", "seawall", measurement{rps: 1, p99: p99.seawall * time.Millisecond})
		r.add("fixed-own", "proto-fasthttp-h1", measurement{rps: 1, p99: p99.engine * time.Millisecond})
		r.add("fixed-own", "direct", measurement{rps: 1, p99: p99.direct * time.Millisecond})
	}
	r.add("cache1k", "seawall", measurement{rps: 5}) // no engine measured: no row
	got := r.byRound()
	for _, want := range []string{
		"| (a) pass-through, limiter+breaker+retry on | proto-fasthttp-h1 | 0.50×, 0.80×, 0.50× | 0.60×, 0.60×, 0.47× | 2 of 3 rounds |",
		"| (d') fixed rate, half of Seawall's (a); the Go generator | proto-fasthttp-h1 | +6.00 ms, +1.00 ms | +1.00 ms, +3.00 ms | 1 of 2 rounds |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "(b) cache hit, 1 KiB") {
		t.Errorf("a scenario without its engine got a row:\n%s", got)
	}
}

// The group commit of each (e) row is read off Seawall's metrics before
// and after its measurement, and reported for the median round.
func TestGroupCommitFromTwoScrapes(t *testing.T) {
	before := []float64{100, 10, 0.02}
	after := []float64{1100, 35, 0.12}
	got := groupCommitOver(before, after, 5*time.Second)
	if got.batch != 40 || got.perSec != 5 || got.mean != 4*time.Millisecond {
		t.Errorf("groupCommitOver = %+v, want 40 a transaction, 5/s, 4ms each", got)
	}
	if got := groupCommitOver([]float64{-1, 10, 0}, after, time.Second); got != (groupCommit{}) {
		t.Errorf("a failed scrape gave %+v", got)
	}
	if got := groupCommitOver(after, after, time.Second); got != (groupCommit{}) {
		t.Errorf("no transactions gave %+v", got)
	}
	r := newResults()
	for i, rps := range []float64{300, 100, 200} {
		r.add("async-pg", "seawall", measurement{rps: rps, commit: groupCommit{batch: float64(i + 1), perSec: 10, mean: time.Millisecond}})
	}
	want := "- (e) the same on PostgreSQL, Seawall on both cores: 3.0 enqueues a transaction, 10 transactions/s, 1.00 ms each"
	if got := r.groupCommits(); !strings.Contains(got, want) {
		t.Errorf("missing %q in\n%s", want, got)
	}
	if got := newResults().groupCommits(); got != "" {
		t.Errorf("no (e) rows gave %q", got)
	}
}

// The profiling round (0) is measured but not counted: a profiled
// Seawall is slower, and its tail is partly the profiler's.
func TestTheProfilingRoundIsNotCounted(t *testing.T) {
	r := newResults()
	r.of(0).add("pass", "seawall", measurement{rps: 1, p99: time.Second})
	if _, ok := r.median("pass", "seawall"); ok {
		t.Error("round 0's measurement was counted")
	}
	r.of(1).add("pass", "seawall", measurement{rps: 2})
	if m, ok := r.median("pass", "seawall"); !ok || m.rps != 2 {
		t.Errorf("round 1's measurement: %+v, %v", m, ok)
	}
}

// Each proxy's row gives its CPU time a request: its share of a core over
// the measurement, divided by the requests it served. Direct has none.
func TestTheTableGivesCPUPerRequest(t *testing.T) {
	r := newResults()
	r.add("pass", "direct", measurement{rps: 40000, proxyCPU: 0})
	r.add("pass", "seawall", measurement{rps: 20000, proxyCPU: 96})
	r.add("pass", "nginx", measurement{rps: 26000, proxyCPU: 65})
	got := r.table()
	for _, want := range []string{
		"| (a) pass-through, limiter+breaker+retry on | seawall | 20000 | 0 µs | 0 µs | 0 µs | 96% | 48.0 | ",
		"| (a) pass-through, limiter+breaker+retry on | nginx | 26000 | 0 µs | 0 µs | 0 µs | 65% | 25.0 | ",
		"| (a) pass-through, limiter+breaker+retry on | direct | 40000 | 0 µs | 0 µs | 0 µs |  |  |  | ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

// Each row shows the generator's and the upstream's CPU share, and a row
// in which the two together kept their shared core busy is named: its
// pace may be theirs, not the target's.
func TestTheTableNamesRowsTheGeneratorsCorePaced(t *testing.T) {
	r := newResults()
	r.add("pass", "seawall", measurement{rps: 20000, proxyCPU: 99, genCPU: 40, upCPU: 30})
	r.add("pass", "nginx", measurement{rps: 60000, proxyCPU: 70, genCPU: 55, upCPU: 40})
	got := r.table()
	for _, want := range []string{
		"| 0 | 40% | 30% |\n",
		"| 0 | 55% | 40% |\n",
		"- (a) pass-through, limiter+breaker+retry on, nginx (generator 55% + upstream 40%)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, ", seawall (generator") {
		t.Errorf("Seawall's row named although its generator's core was 70%% busy:\n%s", got)
	}
}

// The pairs' table gives Seawall's CPU a request over the other
// target's for each run, a row for each target Seawall ran beside, and
// leaves out a run whose CPU is unknown.
func TestThePairsGiveCPUPerRequestRatios(t *testing.T) {
	r := newResults()
	r.pairs = []pair{
		{scenario: "pass", beside: "proto-fasthttp-h1", rate: 5000, seawall: measurement{rps: 10000, proxyCPU: 50}, other: measurement{rps: 12000, proxyCPU: 48}},
		{scenario: "pass", beside: "proto-fasthttp-h1", rate: 5000, seawall: measurement{rps: 9000, proxyCPU: 50}, other: measurement{rps: 0, proxyCPU: 48}},
		{scenario: "cache1k", beside: "proto-fasthttp-static", rate: 10000, seawall: measurement{rps: 20000, proxyCPU: 52}, other: measurement{rps: 24000, proxyCPU: 48}},
		{scenario: "cache1k", beside: "nginx", rate: 10000, seawall: measurement{rps: 20000, proxyCPU: 52}, other: measurement{rps: 25000, proxyCPU: 50}},
		{scenario: "cache1k", beside: "proto-fasthttp-static", rate: 10000, seawall: measurement{rps: 10000, proxyCPU: 30}, other: measurement{rps: 10000, proxyCPU: 20}},
	}
	got := r.table()
	for _, want := range []string{
		// 50 µs against 40 µs a request.
		"| (a) pass-through, limiter+breaker+retry on | proto-fasthttp-h1 | 5000/s | 1.25, ? | 50.0, 40.0 (10000, 12000); 55.6,  (9000, 0) |",
		// 26.0 µs against 20.0 µs.
		"| (b) cache hit, 1 KiB | proto-fasthttp-static | 10000/s | 1.30, 1.50 | 26.0, 20.0 (20000, 24000); 30.0, 20.0 (10000, 10000) |",
		// 26.0 µs against 20.0 µs, in a row of its own.
		"| (b) cache hit, 1 KiB | nginx | 10000/s | 1.30 | 26.0, 20.0 (20000, 25000) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

// The global limits' cost compares Seawall with a redis block to Seawall
// without within each round, and gives the median over the rounds: the
// req/s ratio, the added latency, and the Redis scripts per request.
func TestRedisCostBesideTheLocalLimits(t *testing.T) {
	r := newResults()
	for i, rps := range []float64{1000, 800, 900} {
		r.add("pass", "seawall", measurement{rps: rps, p50: time.Millisecond, p99: 4 * time.Millisecond})
		r.add("pass", "seawall-global", measurement{rps: rps * 0.9, p50: 1500 * time.Microsecond, p99: 6 * time.Millisecond, redisPerReq: 1 + float64(i)/100})
	}
	got := r.redisCost()
	want := "| (a) pass-through, limiter+breaker+retry on | 0.90× | +500 µs | +2.00 ms | 1.01 | 3 |"
	if !strings.Contains(got, want) {
		t.Errorf("missing %q in\n%s", want, got)
	}
	if got := newResults().redisCost(); got != "" {
		t.Errorf("without a global row: %q", got)
	}
}

// Every counted round of a fixed-rate row offers the load the first one
// did, whatever the (a) result of the rounds after it; a profile's round
// 0 offers its own and sets nothing.
func TestFixedRateRowsOfferOneLoadInEveryRound(t *testing.T) {
	o := offered{}
	if got := o.rate(0, "fixed-own", 8000); got != 4000 {
		t.Fatalf("round 0: %v, want half of its own (a), 4000", got)
	}
	if got := o.rate(1, "fixed-own", 20000); got != 10000 {
		t.Fatalf("round 1: %v, want 10000", got)
	}
	for _, pass := range []float64{13000, 30000} {
		if got := o.rate(2, "fixed-own", pass); got != 10000 {
			t.Errorf("a later round whose (a) was %v offered %v, want the first round's 10000", pass, got)
		}
	}
	if got := o.rate(2, "fixed", 50000); got != 25000 {
		t.Errorf("another row: %v, want its own first rate, 25000", got)
	}
}

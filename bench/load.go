package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// measurement is one run against one target.
type measurement struct {
	rps            float64
	p50, p99, p999 time.Duration
	non2xx         int
	proxyCPU       float64 // percent of one core
	proxyRSS       int64   // peak, KiB
	genCPU         float64 // the load generator's, percent of one core
}

func (m measurement) String() string {
	return fmt.Sprintf("%8.0f req/s  p50 %-9v p99 %-9v p99.9 %-9v non-2xx %d  proxy cpu %3.0f%% rss %d KiB  gen cpu %3.0f%%",
		m.rps, m.p50, m.p99, m.p999, m.non2xx, m.proxyCPU, m.proxyRSS, m.genCPU)
}

// measure loads url for d: closed-loop with conns connections when rate is
// 0, else open-model at rate requests/s, each latency counted from when
// its request was due, so queueing delay is not hidden.
func measure(t *target, method, url string, conns int, rate float64, d time.Duration) measurement {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	non2xx := 0
	do := func(due time.Time, local *[]time.Duration, bad *int) {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"event":"bench"}`)
		}
		req, _ := http.NewRequest(method, url, body)
		resp, err := c.Do(req)
		if err != nil {
			*bad++
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			*bad++
		}
		*local = append(*local, time.Since(due))
	}
	cpu0, gen0 := treeCPU(t), selfCPU()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	// worker sends requests while next gives it their due times.
	worker := func(next func() (time.Time, bool)) {
		defer wg.Done()
		local := make([]time.Duration, 0, 1<<16)
		bad := 0
		for at, ok := next(); ok; at, ok = next() {
			do(at, &local, &bad)
		}
		mu.Lock()
		lat, non2xx = append(lat, local...), non2xx+bad
		mu.Unlock()
	}
	if rate == 0 {
		// Closed loop: each request is due when the previous one ends.
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go worker(func() (time.Time, bool) { now := time.Now(); return now, now.Before(end) })
		}
	} else {
		due := make(chan time.Time, int(rate*d.Seconds())+1)
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go worker(func() (time.Time, bool) { at, ok := <-due; return at, ok })
		}
		interval := time.Duration(float64(time.Second) / rate)
		for next := start; next.Before(end); {
			for now := time.Now(); !next.After(now) && next.Before(end); next = next.Add(interval) {
				due <- next
			}
			time.Sleep(time.Millisecond)
		}
		close(due)
	}
	wg.Wait()
	elapsed := time.Since(start)
	m := measurement{non2xx: non2xx}
	m.proxyCPU = (treeCPU(t) - cpu0) / elapsed.Seconds() * 100
	m.genCPU = (selfCPU() - gen0) / elapsed.Seconds() * 100
	m.proxyRSS = treeRSS(t)
	if len(lat) == 0 {
		return m
	}
	slices.Sort(lat)
	m.rps = float64(len(lat)) / elapsed.Seconds()
	pick := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	m.p50, m.p99, m.p999 = pick(0.50), pick(0.99), pick(0.999)
	return m
}

// treeCPU is the CPU seconds used by the target's process and its children
// (nginx's workers); 0 for direct.
func treeCPU(t *target) float64 {
	if t.proc == nil {
		return 0
	}
	var sum float64
	for _, pid := range tree(t.proc.Process.Pid) {
		sum += procCPU(strconv.Itoa(pid))
	}
	return sum
}

func selfCPU() float64 { return procCPU("self") }

// procCPU reads utime+stime from /proc/<pid>/stat, in seconds.
func procCPU(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(fields[11], 64)
	k, _ := strconv.ParseFloat(fields[12], 64)
	return (u + k) / 100 // USER_HZ
}

// treeRSS is the peak resident set (VmHWM) of the target's processes, KiB.
func treeRSS(t *target) int64 {
	if t.proc == nil {
		return 0
	}
	var sum int64
	for _, pid := range tree(t.proc.Process.Pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// tree is pid and its descendants.
func tree(root int) []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 1 {
			parent[pid], _ = strconv.Atoi(fields[1])
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		for pid, pp := range parent {
			if pp == out[i] {
				out = append(out, pid)
			}
		}
	}
	return out
}

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	proxyCPU       float64     // percent of one core
	proxyRSS       int64       // peak, KiB
	genCPU         float64     // the load generator's, percent of one core
	upCPU          float64     // the upstream's, percent of one core
	allocs         float64     // heap allocations per request (Seawall's), 0 if not read
	commit         groupCommit // the (e) rows: the job store's group commit, zero if not read
	redisPerReq    float64     // Redis scripts run per request (seawall-global), 0 if not read
	err            error
}

func (m measurement) String() string {
	if m.err != nil {
		return "failed: " + m.err.Error()
	}
	return fmt.Sprintf("%8.0f req/s  p50 %-9v p99 %-9v p99.9 %-9v non-2xx %d  proxy cpu %3.0f%% rss %d KiB  gen cpu %3.0f%% upstream cpu %3.0f%%",
		m.rps, m.p50, m.p99, m.p999, m.non2xx, m.proxyCPU, m.proxyRSS, m.genCPU, m.upCPU)
}

// measure loads url for d: closed-loop with wrk and conns connections
// when rate is 0, else open-model at rate requests/s from this process.
func measure(t *target, method, url string, conns int, rate float64, d time.Duration) measurement {
	if rate == 0 {
		return measureClosed(t, method, url, conns, d)
	}
	return measureOpen(t, url, conns, rate, d)
}

// wrkScript makes wrk send the method with a small JSON body (for POST)
// and print its figures on one line that measureClosed parses.
func wrkScript(method string) string {
	s := `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.status + e.connect + e.read + e.write + e.timeout))
end
`
	if method == "POST" {
		s = `wrk.method = "POST"
wrk.body = '{"event":"bench"}'
wrk.headers["Content-Type"] = "application/json"
` + s
	}
	return s
}

// measureClosed runs wrk on CPU 0 with one thread: each connection sends
// its next request when the previous one is answered. wrk is written in C
// and uses a small part of its core at these rates, so the proxy, not the
// generator, sets the pace; its CPU is read from this process's reaped
// children.
func measureClosed(t *target, method, url string, conns int, d time.Duration) measurement {
	script := filepath.Join(t.dir, strings.ToLower(method)+".lua")
	if err := writeFile(script, wrkScript(method)); err != nil {
		return measurement{err: err}
	}
	cpu0, gen0, up0 := treeCPU(t), childrenCPU(), upCPU(t)
	start := time.Now()
	cmd := exec.Command("taskset", "-c", "0", "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+d.String(),
		"--timeout", "10s", "-s", script, url)
	out, err := cmd.Output()
	elapsed := time.Since(start)
	m := measurement{
		proxyCPU: (treeCPU(t) - cpu0) / elapsed.Seconds() * 100,
		genCPU:   (childrenCPU() - gen0) / elapsed.Seconds() * 100,
		upCPU:    (upCPU(t) - up0) / elapsed.Seconds() * 100,
		proxyRSS: treeRSS(t),
	}
	if err != nil {
		m.err = fmt.Errorf("wrk: %w", err)
		return m
	}
	if err := parseWrk(out, &m); err != nil {
		m.err = err
	}
	return m
}

// parseWrk reads the figures line wrkScript makes wrk print into m.
func parseWrk(out []byte, m *measurement) error {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 7 || f[0] != "WRK" {
			continue
		}
		var v [6]int64
		for i := range v {
			n, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("wrk figures %q: field %d is not a count", line, i+1)
			}
			v[i] = n
		}
		if v[1] == 0 {
			return fmt.Errorf("wrk figures %q: no duration", line)
		}
		m.rps = float64(v[0]) / (float64(v[1]) / 1e6)
		m.p50, m.p99, m.p999 = time.Duration(v[2])*time.Microsecond, time.Duration(v[3])*time.Microsecond, time.Duration(v[4])*time.Microsecond
		m.non2xx = int(v[5])
		return nil
	}
	return fmt.Errorf("wrk printed no figures:\n%s", out)
}

// openWarmup is the load measureOpen sends before it counts.
const openWarmup = time.Second

// measureOpen sends GETs at a fixed rate whatever the answers' pace, each
// latency counted from when its request was due, so queueing delay is not
// hidden. conns keep-alive connections take the due times in turn; each is
// a bare HTTP/1.1 client (one write and a buffered read per request), which
// costs its core a fraction of what net/http's client would, so that the
// generator adds as little latency of its own as it can.
func measureOpen(t *target, url string, conns int, rate float64, d time.Duration) measurement {
	u, err := neturl.Parse(url)
	if err != nil {
		return measurement{err: err}
	}
	request := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n")
	var mu sync.Mutex
	var lat []time.Duration
	non2xx := 0
	// The first openWarmup of load is sent at the same rate but not
	// counted: the connections it opens (the generator's, and a proxy's
	// to the upstream) are the steady state's, and opening 128 of them
	// at once would otherwise be a fifth of a 5 s window's slowest 1%.
	begin := time.Now()
	start := begin.Add(openWarmup)
	end := start.Add(d)
	due := make(chan time.Time, int(rate*(d+openWarmup).Seconds())+1)
	var cpu0, gen0, up0 float64
	var warm sync.Once
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			bad := 0
			var c *rawConn
			for at := range due {
				if c == nil {
					var err error
					if c, err = dialRaw(u.Host); err != nil {
						bad++
						continue
					}
				}
				status, err := c.get(request)
				if at.Before(start) {
					if err != nil {
						c.close()
						c = nil
					}
					continue
				}
				if err != nil {
					c.close()
					c = nil
					bad++
					continue
				}
				if status/100 != 2 {
					bad++
				}
				local = append(local, time.Since(at))
			}
			if c != nil {
				c.close()
			}
			mu.Lock()
			lat, non2xx = append(lat, local...), non2xx+bad
			mu.Unlock()
		}()
	}
	interval := time.Duration(float64(time.Second) / rate)
	for next := begin; next.Before(end); {
		for now := time.Now(); !next.After(now) && next.Before(end); next = next.Add(interval) {
			if !next.Before(start) {
				warm.Do(func() { cpu0, gen0, up0 = treeCPU(t), selfCPU(), upCPU(t) })
			}
			due <- next
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	warm.Do(func() { cpu0, gen0, up0 = treeCPU(t), selfCPU(), upCPU(t) })
	m := measurement{non2xx: non2xx}
	m.proxyCPU = (treeCPU(t) - cpu0) / elapsed.Seconds() * 100
	m.genCPU = (selfCPU() - gen0) / elapsed.Seconds() * 100
	m.upCPU = (upCPU(t) - up0) / elapsed.Seconds() * 100
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

// rawConn is one keep-alive connection of measureOpen's bare client. It
// reads answers framed by Content-Length or chunked; anything else is an
// error.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(host string) (*rawConn, error) {
	conn, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	return &rawConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10)}, nil
}

func (c *rawConn) close() { _ = c.conn.Close() }

// get sends request and reads the answer, returning its status.
func (c *rawConn) get(request []byte) (int, error) {
	if err := c.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.conn.Write(request); err != nil {
		return 0, err
	}
	return readAnswer(c.r)
}

// readAnswer reads one HTTP/1.1 answer framed by Content-Length or chunked and returns
// its status, leaving r at the start of the next answer.
func readAnswer(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		switch {
		case !ok:
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil || length < 0 {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(bytes.TrimSpace(value), []byte("chunked")) {
				return 0, fmt.Errorf("unknown Transfer-Encoding %q", value)
			}
			chunked = true
		}
	}
	switch {
	case chunked && length >= 0:
		return 0, fmt.Errorf("answer with both Content-Length and Transfer-Encoding")
	case chunked:
		// nginx sends a cached answer chunked when its vendor did.
		if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(r)); err != nil {
			return 0, err
		}
		for { // the trailer section, then the empty line
			h, err := r.ReadSlice('\n')
			if err != nil {
				return 0, err
			}
			if len(bytes.TrimRight(h, "\r\n")) == 0 {
				return status, nil
			}
		}
	case length < 0:
		return 0, fmt.Errorf("answer without Content-Length or chunked framing")
	}
	_, err = r.Discard(length)
	return status, err
}

// treeCPU is the CPU seconds used by the target's process and its children
// (nginx's workers); 0 for direct.
func treeCPU(t *target) float64 { return procTreeCPU(t.proc) }

// upCPU is the CPU seconds used by the target's upstream (nginx's master
// and worker); 0 when unknown.
func upCPU(t *target) float64 { return procTreeCPU(t.up) }

// procTreeCPU is the CPU seconds used by p and its children; 0 for nil.
func procTreeCPU(p *exec.Cmd) float64 {
	if p == nil {
		return 0
	}
	var sum float64
	for _, pid := range tree(p.Process.Pid) {
		sum += procCPU(strconv.Itoa(pid))
	}
	return sum
}

func selfCPU() float64 { return statCPU("self", 11) }

// childrenCPU is the CPU seconds of this process's reaped children (wrk).
func childrenCPU() float64 { return statCPU("self", 13) }

func procCPU(pid string) float64 { return statCPU(pid, 11) }

// statCPU reads two adjacent fields of /proc/<pid>/stat counted from the
// one after the command name: utime+stime at 11, cutime+cstime at 13; in
// seconds.
func statCPU(pid string, at int) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < at+2 {
		return 0
	}
	u, _ := strconv.ParseFloat(fields[at], 64)
	k, _ := strconv.ParseFloat(fields[at+1], 64)
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

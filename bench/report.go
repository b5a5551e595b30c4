package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// results keeps every round's measurement per scenario and target.
type results struct {
	m        map[string]map[string][]measurement
	syscalls []string // per request in (a), with strace attached, by target
	pairs    []pair   // Seawall and another target on one core at once
}

// pair is one run of Seawall and another target (its bare engine, or
// nginx) at the same time, both on the proxies' core, each offered the
// same rate: whatever else the host does falls on both alike, so the
// ratio of their CPU a request holds where figures measured one after
// the other drift.
type pair struct {
	scenario, beside string
	rate             float64 // offered to each
	seawall, other   measurement
}

// cpuRatio is Seawall's CPU a request over the other's; 0 when either
// is unknown.
func (p pair) cpuRatio() float64 {
	sw, o := cpuMicros(p.seawall), cpuMicros(p.other)
	if sw == 0 || o == 0 {
		return 0
	}
	return sw / o
}

// pairsTable lists the pairs run, by scenario and then by what Seawall
// ran beside, in the order run.
func (r *results) pairsTable() string {
	if len(r.pairs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nSeawall beside its bare engine, itself on net/http (`seawall-nethttp`), or nginx, on one core at once (`-only pair`), each offered the same rate by its own generator; Seawall's CPU a request over the other's, run by run:\n\n")
	b.WriteString("| scenario | beside | offered to each | Seawall / other, CPU a request | Seawall, other: CPU µs a request (req/s served) |\n|---|---|---|---|---|\n")
	for _, s := range scenarioNames {
		var besides []string
		for _, p := range r.pairs {
			if p.scenario == s.key && !slices.Contains(besides, p.beside) {
				besides = append(besides, p.beside)
			}
		}
		for _, beside := range besides {
			var ratios, each []string
			rate := 0.0
			for _, p := range r.pairs {
				if p.scenario != s.key || p.beside != beside {
					continue
				}
				rate = p.rate
				ratio := "?"
				if x := p.cpuRatio(); x > 0 {
					ratio = fmt.Sprintf("%.2f", x)
				}
				ratios = append(ratios, ratio)
				each = append(each, fmt.Sprintf("%s, %s (%.0f, %.0f)", cpuPerRequest(p.seawall), cpuPerRequest(p.other), p.seawall.rps, p.other.rps))
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f/s | %s | %s |\n", s.title, beside, rate, strings.Join(ratios, ", "), strings.Join(each, "; "))
		}
	}
	return b.String()
}

func newResults() *results { return &results{m: map[string]map[string][]measurement{}} }

// of is where round's measurements go: r, but for round 0, the round
// that profiles Seawall, whose measurements count for nothing but the
// rates of its own fixed-rate rows.
func (r *results) of(round int) *results {
	if round == 0 {
		return newResults()
	}
	return r
}

func (r *results) add(scenario, target string, m measurement) {
	if r.m[scenario] == nil {
		r.m[scenario] = map[string][]measurement{}
	}
	r.m[scenario][target] = append(r.m[scenario][target], m)
}

// best is the highest req/s of a target in a scenario so far.
func (r *results) best(scenario, target string) float64 {
	b := 0.0
	for _, m := range r.m[scenario][target] {
		b = max(b, m.rps)
	}
	return b
}

// median is the round with the median req/s, or for the fixed-rate
// scenarios, where every round has the same rate, the median p99.
func (r *results) median(scenario, target string) (measurement, bool) {
	ms := slices.Clone(r.m[scenario][target])
	if len(ms) == 0 {
		return measurement{}, false
	}
	key := func(m measurement) float64 { return m.rps }
	if strings.HasPrefix(scenario, "fixed") {
		key = func(m measurement) float64 { return float64(m.p99) }
	}
	slices.SortFunc(ms, func(a, b measurement) int { return cmp.Compare(key(a), key(b)) })
	return ms[len(ms)/2], true
}

var scenarioNames = []struct{ key, title string }{
	{"pass", "(a) pass-through, limiter+breaker+retry on"},
	{"cache1k", "(b) cache hit, 1 KiB"},
	{"cache64k", "(b) cache hit, 64 KiB"},
	{"down", "(c) fail-fast, upstream known down"},
	{"tls", "(f) pass-through to an HTTPS upstream, keep-alive"},
	{"fixed", "(d) fixed rate, half of nginx's (a); the harness's Go open-model generator"},
	{"fixed-own", "(d') fixed rate, half of Seawall's (a); the Go generator"},
	{"async", "(e) async enqueue, SQLite, 64 clients, 202 once on disk, deliveries held by a slow vendor (the Go upstream)"},
	{"async-both", "(e) the same, Seawall on both cores"},
	{"async-pg", "(e) the same on PostgreSQL, Seawall on both cores"},
	{"async-deliver", "(e) the same as the first, deliveries running (8 workers)"},
}

// table renders the median round of each scenario and target, with each
// proxy's ratios to direct and to nginx.
func (r *results) table() string {
	var b strings.Builder
	b.WriteString("| scenario | target | req/s | p50 | p99 | p99.9 | proxy CPU | CPU µs/req | peak RSS | allocs/req | vs direct (req/s, or added latency at a fixed rate) | vs nginx (req/s, p99) | non-2xx | generator CPU | upstream CPU |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var pace []string // rows whose generator's core, not the target, may have set the pace
	for _, s := range scenarioNames {
		direct, hasDirect := r.median(s.key, "direct")
		ng, hasNginx := r.median(s.key, "nginx")
		for _, t := range []string{"direct", "seawall", "seawall-nethttp", "seawall-global", "seawall-l2", "nginx", "haproxy", "caddy", "proto-nethttp", "proto-h1", "proto-fasthttp", "proto-nbio", "proto-fasthttp-adaptor", "proto-fasthttp-h1", "proto-fasthttp-h1-stream", "proto-nethttp-fastclient", "proto-fasthttp-adapted", "proto-static", "proto-fasthttp-static", "proto-nbio-static"} {
			m, ok := r.median(s.key, t)
			if !ok {
				continue
			}
			vsDirect, vsNginx := "", ""
			switch {
			case !hasDirect || t == "direct" || direct.rps == 0:
			case strings.HasPrefix(s.key, "fixed"):
				vsDirect = fmt.Sprintf("%s p50, %s p99", signed(m.p50-direct.p50), signed(m.p99-direct.p99))
			default:
				vsDirect = fmt.Sprintf("%.2f×", m.rps/direct.rps)
			}
			if hasNginx && t != "nginx" && t != "direct" && ng.rps > 0 && ng.p99 > 0 {
				vsNginx = fmt.Sprintf("%.2f×, %.2f×", m.rps/ng.rps, float64(m.p99)/float64(ng.p99))
			}
			cpu, perReq, rss, allocs := "", "", "", ""
			if t != "direct" {
				cpu, rss = fmt.Sprintf("%.0f%%", m.proxyCPU), fmt.Sprintf("%d MiB", m.proxyRSS/1024)
				perReq = cpuPerRequest(m)
			}
			if m.allocs > 0 {
				allocs = fmt.Sprintf("%.0f", m.allocs)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %.0f%% | %.0f%% |\n", s.title, t, m.rps,
				round(m.p50), round(m.p99), round(m.p999), cpu, perReq, rss, allocs, vsDirect, vsNginx, m.non2xx, m.genCPU, m.upCPU)
			if m.genCPU+m.upCPU >= genCoreBusy {
				pace = append(pace, fmt.Sprintf("%s, %s (generator %.0f%% + upstream %.0f%%)", s.title, t, m.genCPU, m.upCPU))
			}
		}
	}
	if len(pace) > 0 {
		fmt.Fprintf(&b, "\nThe generator and the upstream share a core; in these rows they used %.0f%% of it or more, so it may have set the pace, not the target:\n- %s\n", genCoreBusy, strings.Join(pace, "\n- "))
	}
	b.WriteString(r.byRound())
	b.WriteString(r.groupCommits())
	b.WriteString(r.redisCost())
	if len(r.syscalls) > 0 {
		fmt.Fprintf(&b, "\nSystem calls per request in (a), strace attached: %s.\n", strings.Join(r.syscalls, "; "))
	}
	b.WriteString(r.pairsTable())
	return b.String()
}

// genCoreBusy is the share of the generator's core (wrk and the upstream
// together, percent) past which a row's pace may be theirs.
const genCoreBusy = 90.0

// cpuPerRequest is the proxy's CPU time a request served, in µs: its cost
// whatever set the rate, the proxy's core or the generator and upstream.
func cpuPerRequest(m measurement) string {
	if us := cpuMicros(m); us > 0 {
		return fmt.Sprintf("%.1f", us)
	}
	return ""
}

// cpuMicros is the proxy's CPU time a request served, in µs; 0 when
// unknown.
func cpuMicros(m measurement) float64 {
	if m.rps <= 0 || m.proxyCPU <= 0 {
		return 0
	}
	return m.proxyCPU / 100 * 1e6 / m.rps
}

// groupCommits says, for each (e) row's median round, how the job store
// grouped its enqueues, from Seawall's own metrics.
// redisCost says what the global limits cost beside the local ones, in
// the (a) and (d) rows: within each round (both measured in it, at the
// same offered rate in (d)), the req/s ratio, the added latency and the
// Redis scripts per request; the median of each over the rounds.
func (r *results) redisCost() string {
	var rows []string
	for _, s := range scenarioNames {
		g, l := r.m[s.key]["seawall-global"], r.m[s.key]["seawall"]
		var ratio, p50, p99, scripts []float64
		for i := range min(len(g), len(l)) {
			if l[i].rps == 0 || g[i].rps == 0 {
				continue
			}
			ratio = append(ratio, g[i].rps/l[i].rps)
			p50 = append(p50, float64(g[i].p50-l[i].p50))
			p99 = append(p99, float64(g[i].p99-l[i].p99))
			scripts = append(scripts, g[i].redisPerReq)
		}
		if len(ratio) == 0 {
			continue
		}
		med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
		rows = append(rows, fmt.Sprintf("| %s | %.2f× | %s | %s | %.2f | %d |", s.title, med(ratio),
			signed(time.Duration(med(p50))), signed(time.Duration(med(p99))), med(scripts), len(ratio)))
	}
	if len(rows) == 0 {
		return ""
	}
	return "\n**Global limits** (`redis` set: each call takes its slot from Redis; [distributed.md](distributed.md)) beside the local ones, compared within each round, the median over the rounds:\n\n" +
		"| scenario | req/s, global ÷ local | added p50 | added p99 | Redis scripts per request | rounds |\n|---|---|---|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
}

func (r *results) groupCommits() string {
	var rows []string
	for _, s := range scenarioNames {
		m, ok := r.median(s.key, "seawall")
		if !ok || m.commit.batch == 0 {
			continue
		}
		rows = append(rows, fmt.Sprintf("%s: %.1f enqueues a transaction, %.0f transactions/s, %s each", s.title, m.commit.batch, m.commit.perSec, round(m.commit.mean)))
	}
	if len(rows) == 0 {
		return ""
	}
	return "\nGroup commit in the (e) rows' median rounds (`seawall_job_enqueue_batch_size` and `seawall_job_enqueue_commit_seconds`):\n- " + strings.Join(rows, "\n- ") + "\n"
}

// engineOf is, per scenario, the bare engine that does the same job as
// Seawall with no policies: what Seawall could reach on its engine
// (fasthttp's server; internal/h1 to the upstream).
var engineOf = map[string]string{
	"pass": "proto-fasthttp-h1", "tls": "proto-fasthttp-h1", "cache1k": "proto-fasthttp-static", "cache64k": "proto-fasthttp-static",
	"down": "proto-fasthttp-static", "fixed": "proto-fasthttp-h1", "fixed-own": "proto-fasthttp-h1",
}

// byRound sets Seawall beside its bare engine round by round, each
// against a peer measured in the same round: nginx's req/s, or direct's
// p99 at a fixed rate. A host whose speed drifts moves the medians of
// the table above apart; within one round the targets ran back to back.
func (r *results) byRound() string {
	var b strings.Builder
	for _, s := range scenarioNames {
		eng, peer := engineOf[s.key], "nginx"
		fixed := strings.HasPrefix(s.key, "fixed")
		if fixed {
			peer = "direct"
		}
		sw, en, pe := r.m[s.key]["seawall"], r.m[s.key][eng], r.m[s.key][peer]
		if eng == "" || len(sw) == 0 || len(sw) != len(en) || len(sw) != len(pe) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nRound by round, Seawall beside its bare engine (the proxy's req/s over nginx's in the same round; at a fixed rate, the p99 added over direct's in the same round):\n\n")
			b.WriteString("| scenario | engine | Seawall, each round | engine, each round | Seawall ≥ engine in |\n|---|---|---|---|---|\n")
		}
		var sws, ens []string
		wins := 0
		for i := range sw {
			if fixed {
				sws, ens = append(sws, signed(sw[i].p99-pe[i].p99)), append(ens, signed(en[i].p99-pe[i].p99))
				if sw[i].p99 <= en[i].p99 {
					wins++
				}
				continue
			}
			if pe[i].rps == 0 {
				return ""
			}
			sws, ens = append(sws, fmt.Sprintf("%.2f×", sw[i].rps/pe[i].rps)), append(ens, fmt.Sprintf("%.2f×", en[i].rps/pe[i].rps))
			if sw[i].rps >= en[i].rps {
				wins++
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d of %d rounds |\n", s.title, eng, strings.Join(sws, ", "), strings.Join(ens, ", "), wins, len(sw))
	}
	return b.String()
}

// signed is round with a sign: an added latency can come out negative
// when the proxy's run was the luckier one.
func signed(d time.Duration) string {
	if d < 0 {
		return "−" + round(-d)
	}
	return "+" + round(d)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
}

const beginMark, endMark = "<!-- bench:begin -->", "<!-- bench:end -->"

// writeSection replaces the harness's section of the benchmarks doc.
func writeSection(path, table string, d time.Duration, rounds, conns int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	section := fmt.Sprintf("%s\nRun %s: `go run ./bench -duration %s -rounds %d -conns %d -write`; each cell is the median of %d rounds.\n\nMachine: %s.\n\n%s%s",
		beginMark, time.Now().UTC().Format("2006-01-02 15:04 MST"), d, rounds, conns, rounds, machine(), table, endMark)
	i, j := strings.Index(doc, beginMark), strings.Index(doc, endMark)
	if i < 0 || j < i {
		doc += "\n" + section + "\n"
	} else {
		doc = doc[:i] + section + doc[j+len(endMark):]
	}
	return os.WriteFile(path, []byte(doc), 0o600)
}

// machine describes where the run happened: CPU, cores, memory, kernel and
// the versions of Go, nginx and HAProxy.
func machine() string {
	cpu, mem, cores := "unknown CPU", "", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "processor") {
				cores++ // all of them: this process is pinned to one
			}
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				mem = fmt.Sprintf(", %d GiB", (kb+512<<10)>>20)
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	// version is the first word of a tool's version line that starts with
	// a digit, after any "name/" prefix.
	version := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput()
		for _, w := range strings.Fields(string(out)) {
			if i := strings.LastIndexByte(w, '/'); i >= 0 {
				w = w[i+1:]
			}
			if w != "" && w[0] >= '0' && w[0] <= '9' {
				return w
			}
		}
		return "?"
	}
	return fmt.Sprintf("%s, %d cores%s, Linux %s; %s, nginx %s, HAProxy %s, Caddy %s, wrk %s", cpu, cores, mem,
		strings.TrimSpace(string(kernel)), runtime.Version(), version("nginx", "-v"), version("haproxy", "-v"), version("caddy", "version"), version("wrk", "--version"))
}

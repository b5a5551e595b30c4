// Command bench measures Seawall side by side with nginx, HAProxy and
// Caddy on loopback, each configured for the same job, and writes the
// table into docs/benchmarks.md.
//
//	go run ./bench [-duration 5s] [-rounds 3] [-conns 32] [-write]
//
// The proxies run pinned to CPU 1 with one worker each (nginx
// worker_processes 1, HAProxy nbthread 1, Seawall and Caddy GOMAXPROCS=1);
// the load generator and the upstream share CPU 0. nginx, HAProxy, Caddy,
// wrk and strace are installed from Debian's packages when missing (as
// root).
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seawall/seawall/internal/testredis"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "upstream" {
		serveUpstream(os.Args[2], os.Args[3], os.Args[4])
		return
	}
	duration := flag.Duration("duration", 5*time.Second, "length of each measurement")
	rounds := flag.Int("rounds", 3, "rounds; targets alternate within each round")
	conns := flag.Int("conns", 32, "concurrent connections of the closed-loop load")
	write := flag.Bool("write", false, "write the table into docs/benchmarks.md")
	profile := flag.String("profile", "", "write a CPU profile of Seawall for each scenario into this directory, from an extra round 0 that the table does not count")
	only := flag.String("only", "", "comma-separated scenarios to run (pass,cache1k,cache64k,down,tls,fixed,fixed-own,async,async-both,async-pg,async-deliver,syscalls,engines,pair,global; global adds the Seawalls with a redis block, and with cache1k a replica reading the shared cache level); default all")
	flag.BoolVar(&traceRuns, "trace", false, "with -profile, fetch runtime traces instead of CPU profiles (go tool trace)")
	flag.Float64Var(&fixedRate, "rate", 0, "offer the fixed-rate rows (d) and (d') this many requests/s instead of half of nginx's and Seawall's (a): the same load for runs compared with each other")
	flag.BoolVar(&seawallNetHTTP, "nethttp", false, "Seawall's upstreams use Go's net/http client (http2: true) instead of its own")
	flag.BoolVar(&goUpstream, "go-upstream", false, "every row calls the harness's Go upstream instead of nginx answering from memory (the harness before 2026-12: it saturates its core first)")
	flag.Parse()
	if os.Getenv("BENCH_PINNED") == "" {
		pinSelf() // re-exec on CPU 0
		return
	}
	if err := run(*duration, *rounds, *conns, *write, *only, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// pinSelf runs this program again under taskset on CPU 0.
func pinSelf() {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	cmd := exec.Command("taskset", append([]string{"-c", "0", exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), "BENCH_PINNED=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Exit(1)
	}
}

// serveUpstream is the fast local upstream: fixed bodies, nothing else,
// over HTTP on addr and HTTPS on tlsAddr with the certificate in dir.
func serveUpstream(addr, tlsAddr, dir string) {
	small := []byte(`{"ok":true,"id":"item-42","price":1999}`)
	k1 := []byte(strings.Repeat("a", 1024))
	k64 := []byte(strings.Repeat("b", 64<<10))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/hold/") {
			// A vendor slow to answer: the (e) rows' deliveries wait here,
			// so that they measure acceptance alone.
			select {
			case <-time.After(time.Minute):
			case <-r.Context().Done():
			}
		}
		body := small
		switch r.URL.Path {
		case "/1k":
			body = k1
			w.Header().Set("Cache-Control", "public, max-age=3600")
		case "/64k":
			body = k64
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	tlsSrv := &http.Server{Addr: tlsAddr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		err := tlsSrv.ListenAndServeTLS(filepath.Join(dir, "upstream.crt"), filepath.Join(dir, "upstream.key"))
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

// target is one thing under load: direct, or a proxy process.
type target struct {
	name  string
	base  string // URL prefix; paths are appended
	paths map[string]string
	proc  *exec.Cmd
	dir   string // the run's scratch directory
	// redisPort is the Redis its limits go through; 0 for none.
	redisPort int
	// up is the upstream it calls, whose CPU share each row shows.
	up *exec.Cmd
	// admin is a Seawall's admin port, for its allocations a request and
	// -profile; 0 for the other targets.
	admin int
}

// redisScripts is how many scripts the Redis at port has run; 0 for no
// port, or when it cannot be read.
func redisScripts(port int) int64 {
	if port == 0 {
		return 0
	}
	return testredis.ScriptCalls(port)
}

func run(duration time.Duration, rounds, conns int, write bool, only, profileDir string) error {
	want := func(s string) bool { return only == "" || slices.Contains(strings.Split(only, ","), s) }
	if write && only != "" {
		return fmt.Errorf("-write needs every scenario; drop -only")
	}
	if err := ensureInstalled(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "machine:", machine())
	dir, err := os.MkdirTemp("", "seawall-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// nginx's workers run as another user when started as root: let them
	// write the cache and temp directories.
	if err := os.Chmod(dir, 0o777); err != nil { //nolint:gosec // the run's own temp dir
		return err
	}
	ports := freePorts(17)
	upPort, swPort, ngPort, hpPort, adminPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	tlsPort, cdPort := ports[5], ports[6]
	goUpPort, goTLSPort := ports[15], ports[16]
	if err := writeUpstreamCert(dir); err != nil {
		return err
	}
	if err := writeUpstreamFiles(dir); err != nil {
		return err
	}
	// The schema is dropped after the processes stop (defers run last
	// first).
	pgDSN := ""
	if want("async-pg") {
		dsn, drop, err := postgresStore()
		if err != nil {
			return err
		}
		defer drop()
		pgDSN = dsn
	}
	exe, _ := os.Executable()
	var procs []*exec.Cmd
	// SIGTERM, not SIGKILL: nginx's master stops its workers only when
	// asked; a killed master leaves them running.
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}()
	start := func(cpu string, env []string, name string, args ...string) (*exec.Cmd, error) {
		if cpu == "" { // both cores
			cpu = "0,1"
		}
		cmd := exec.Command("taskset", append([]string{"-c", cpu, name}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // if the harness dies first
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting %s: %w", name, err)
		}
		procs = append(procs, cmd)
		return cmd, nil
	}
	// Two upstreams on the generator's core: nginx answering from memory
	// for every row it can serve, and the harness's own Go server for
	// what only it does (holding the (e) rows' deliveries), or for every
	// row with -go-upstream.
	goUp, err := start("0", nil, exe, "upstream", fmt.Sprintf("127.0.0.1:%d", goUpPort), fmt.Sprintf("127.0.0.1:%d", goTLSPort), dir)
	if err != nil {
		return err
	}
	upstream := goUp
	if goUpstream {
		upPort, tlsPort = goUpPort, goTLSPort
	} else {
		if err := writeFile(filepath.Join(dir, "upstream-nginx.conf"), nginxUpstreamConfig(dir, upPort, tlsPort)); err != nil {
			return err
		}
		if upstream, err = start("0", nil, "nginx", "-c", filepath.Join(dir, "upstream-nginx.conf"), "-e", filepath.Join(dir, "upstream-nginx-error.log")); err != nil {
			return err
		}
	}
	swBin := filepath.Join(dir, "seawall")
	if out, err := exec.Command("go", "build", "-o", swBin, "./cmd/seawall").CombinedOutput(); err != nil {
		return fmt.Errorf("building seawall: %w\n%s", err, out)
	}
	files := map[string]string{
		"seawall.yaml": seawallConfig(dir, swPort, upPort, tlsPort, adminPort),
		"nginx.conf":   nginxConfig(dir, ngPort, upPort, tlsPort),
		"haproxy.cfg":  haproxyConfig(dir, hpPort, upPort, tlsPort),
		"Caddyfile":    caddyConfig(cdPort, upPort, tlsPort, dir),
	}
	for name, body := range files {
		if err := writeFile(filepath.Join(dir, name), body); err != nil {
			return err
		}
	}
	sw, err := start("1", append([]string{"GOMAXPROCS=1"}, strings.Fields(*seawallEnv)...), swBin, "serve", "-c", filepath.Join(dir, "seawall.yaml"))
	if err != nil {
		return err
	}
	// The same Seawall on its other engine (engine: net/http; ADR 0006).
	otherPorts := freePorts(2)
	if err := writeFile(filepath.Join(dir, "seawall-nethttp.yaml"), seawallConfig(dir, otherPorts[0], upPort, tlsPort, otherPorts[1])+"engine: net/http\n"); err != nil {
		return err
	}
	swOther, err := start("1", append([]string{"GOMAXPROCS=1"}, strings.Fields(*seawallEnv)...), swBin, "serve", "-c", filepath.Join(dir, "seawall-nethttp.yaml"))
	if err != nil {
		return err
	}
	ng, err := start("1", nil, "nginx", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "nginx-error.log"))
	if err != nil {
		return err
	}
	hp, err := start("1", nil, "haproxy", "-f", filepath.Join(dir, "haproxy.cfg"))
	if err != nil {
		return err
	}
	cd, err := start("1", []string{"GOMAXPROCS=1", "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir},
		"caddy", "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	listening := []int{upPort, tlsPort, goUpPort, goTLSPort, swPort, otherPorts[0], ngPort, hpPort, cdPort}
	// Seawall with its limits global, through a redis-server of its own on
	// the first core beside the upstream: the cost of sharing the pace.
	var swGlobal, swL2 *exec.Cmd
	globalPort, redisPort, l2Port := ports[12], ports[14], 0
	if want("global") {
		if _, err := start("0", nil, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"); err != nil {
			return err
		}
		if err := waitListening(redisPort); err != nil {
			return err
		}
		cfg := filepath.Join(dir, "seawall-global.yaml")
		if err := writeFile(cfg, seawallGlobalConfig(dir, globalPort, upPort, tlsPort, ports[13], redisPort)); err != nil {
			return err
		}
		if swGlobal, err = start("1", append([]string{"GOMAXPROCS=1"}, strings.Fields(*seawallEnv)...), swBin, "serve", "-c", cfg); err != nil {
			return err
		}
		listening = append(listening, globalPort)
		// A second replica sharing the cache, whose memory holds no
		// cached answer (cache.max_bytes under one): each of its hits is
		// read from the level in Redis the first replica filled.
		ps := freePorts(2)
		l2Port = ps[0]
		cfg = filepath.Join(dir, "seawall-l2.yaml")
		if err := writeFile(cfg, seawallL2Config(dir, l2Port, upPort, tlsPort, ps[1], redisPort)); err != nil {
			return err
		}
		if swL2, err = start("1", append([]string{"GOMAXPROCS=1"}, strings.Fields(*seawallEnv)...), swBin, "serve", "-c", cfg); err != nil {
			return err
		}
		listening = append(listening, l2Port)
	}
	// asyncRow measures one (e) row on a Seawall of its own, started for
	// it and killed after (its store is thrown away), so that neither its
	// job store's polling nor its deliveries touch any other row: pinned
	// with one worker like the other proxies, or on both cores.
	asyncRow := func(key string, r int) (measurement, error) {
		store, cpu, env, hold := filepath.Join(dir, fmt.Sprintf("jobs-%s-%d.db", key, r)), "1", []string{"GOMAXPROCS=1"}, true
		switch key {
		case "async-both":
			cpu, env = "", nil
		case "async-pg":
			cpu, env, store = "", nil, pgDSN
		case "async-deliver":
			hold = false
		}
		ps := freePorts(2)
		cfg := filepath.Join(dir, fmt.Sprintf("seawall-%s.yaml", key))
		if err := writeFile(cfg, seawallAsyncConfig(ps[0], ps[1], store, goUpPort, hold)); err != nil {
			return measurement{}, err
		}
		p, err := start(cpu, env, swBin, "serve", "-c", cfg)
		if err != nil {
			return measurement{}, err
		}
		defer func() { _ = p.Process.Kill(); _ = p.Wait() }()
		if err := waitListening(ps[0]); err != nil {
			return measurement{}, err
		}
		var profiled func() error
		if r == 0 {
			profiled = startProfile(ps[1], duration, filepath.Join(profileDir, key+".pprof"))
		}
		t := &target{name: "seawall", base: fmt.Sprintf("http://127.0.0.1:%d", ps[0]), proc: p, dir: dir, up: goUp}
		before := scrape(ps[1], groupCommitMetrics...)
		m := measure(t, "POST", t.base+"/jobs/events", asyncClients, 0, duration)
		m.commit = groupCommitOver(before, scrape(ps[1], groupCommitMetrics...), duration)
		if profiled != nil {
			if err := profiled(); err != nil {
				return m, err
			}
		}
		return m, nil
	}
	// The engine prototypes (ADR 0004): bare pass-through proxies, no
	// policies, on each candidate stack, in the (a), (d) and (f) rows, and
	// bare servers answering from memory in the (b) and (c) rows.
	var protos []*target
	if want("engines") || want("pair") {
		protoBin := filepath.Join(dir, "proto")
		if out, err := exec.Command("go", "build", "-C", "bench/proto", "-o", protoBin, ".").CombinedOutput(); err != nil {
			return fmt.Errorf("building the engine prototypes: %w\n%s", err, out)
		}
		for _, engine := range []string{"nethttp", "h1", "fasthttp", "nbio", "fasthttp-adaptor", "fasthttp-h1", "fasthttp-h1-stream", "nethttp-fastclient", "fasthttp-adapted", "static", "fasthttp-static", "nbio-static"} {
			port := freePorts(1)[0]
			p, err := start("1", []string{"GOMAXPROCS=1"}, protoBin, "-engine", engine,
				"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-upstream", fmt.Sprintf("127.0.0.1:%d", upPort),
				"-tls-upstream", fmt.Sprintf("127.0.0.1:%d", tlsPort), "-ca", filepath.Join(dir, "upstream.crt"))
			if err != nil {
				return err
			}
			listening = append(listening, port)
			paths := map[string]string{"pass": "/api/small", "tls": "/tls/small"}
			switch {
			case strings.HasSuffix(engine, "static"): // the most a handler can do for (b) and (c)
				paths = map[string]string{"cache1k": "/1k", "cache64k": "/64k", "down": "/down"}
			}
			protos = append(protos, &target{name: "proto-" + engine, base: fmt.Sprintf("http://127.0.0.1:%d", port), proc: p, paths: paths})
		}
	}
	for _, p := range listening {
		if err := waitListening(p); err != nil {
			return err
		}
	}
	// A process that could not start (its port taken, a bad config) must
	// not leave its rows to whatever answers on its port.
	for _, p := range procs {
		if exited(p) {
			return fmt.Errorf("%s exited at start", strings.Join(p.Args, " "))
		}
	}
	up := fmt.Sprintf("http://127.0.0.1:%d", upPort)
	targets := []*target{
		{name: "direct", base: up, paths: map[string]string{"pass": "/small", "cache1k": "/1k", "cache64k": "/64k"}},
		{name: "seawall", base: fmt.Sprintf("http://127.0.0.1:%d", swPort), proc: sw, admin: adminPort,
			paths: map[string]string{"pass": "/api/small", "cache1k": "/cache/1k", "cache64k": "/cache/64k", "down": "/down/x", "tls": "/tls/small"}},
		{name: "seawall-nethttp", base: fmt.Sprintf("http://127.0.0.1:%d", otherPorts[0]), proc: swOther, admin: otherPorts[1],
			paths: map[string]string{"pass": "/api/small", "cache1k": "/cache/1k", "cache64k": "/cache/64k", "down": "/down/x", "tls": "/tls/small"}},
		{name: "nginx", base: fmt.Sprintf("http://127.0.0.1:%d", ngPort), proc: ng,
			paths: map[string]string{"pass": "/api/small", "cache1k": "/cache/1k", "cache64k": "/cache/64k", "down": "/down/x", "tls": "/tls/small"}},
		{name: "haproxy", base: fmt.Sprintf("http://127.0.0.1:%d", hpPort), proc: hp,
			paths: map[string]string{"pass": "/api/small", "cache1k": "/cache/1k", "cache64k": "/cache/64k", "down": "/down/x", "tls": "/tls/small"}},
		{name: "caddy", base: fmt.Sprintf("http://127.0.0.1:%d", cdPort), proc: cd,
			paths: map[string]string{"pass": "/api/small", "down": "/down/x", "tls": "/tls/small"}},
	}
	if swGlobal != nil {
		targets = append(targets, &target{name: "seawall-global", base: fmt.Sprintf("http://127.0.0.1:%d", globalPort), proc: swGlobal,
			paths: map[string]string{"pass": "/api/small", "cache1k": "/cache/1k"}, redisPort: redisPort},
			&target{name: "seawall-l2", base: fmt.Sprintf("http://127.0.0.1:%d", l2Port), proc: swL2,
				paths: map[string]string{"cache1k": "/cache/1k"}, redisPort: redisPort})
	}
	targets = append(targets, protos...)
	for _, t := range targets {
		t.dir, t.up = dir, upstream
	}
	// Warm caches and open Seawall's breaker for /down/.
	for _, t := range targets {
		for _, s := range []string{"cache1k", "cache64k", "down"} {
			if p, ok := t.paths[s]; ok {
				for i := 0; i < 3; i++ {
					warm(t.base + p)
				}
			}
		}
	}
	results := newResults()
	scenarios := slices.DeleteFunc([]string{"pass", "cache1k", "cache64k", "down", "tls"}, func(s string) bool { return !want(s) })
	// Profiles come from a round 0 of their own, which the table does not
	// count: a profiled Seawall runs slower, and its tail is the
	// profiler's as much as its own.
	first := 1
	if profileDir != "" {
		first = 0
	}
	rates := offered{}
	for r := first; r <= rounds; r++ {
		res := results.of(r)
		for _, s := range scenarios {
			for i := range targets {
				t := targets[(i+r)%len(targets)] // rotate the order each round
				p, ok := t.paths[s]
				if !ok {
					continue
				}
				var profiled func() error
				if r == 0 && (t.name == "seawall" || t.name == "seawall-nethttp") {
					profiled = startProfile(t.admin, duration, filepath.Join(profileDir, s+strings.TrimPrefix(t.name, "seawall")+".pprof"))
				}
				allocs0 := -1.0
				if t.admin != 0 {
					allocs0 = mallocs(t.admin)
				}
				scripts := redisScripts(t.redisPort)
				m := measure(t, "GET", t.base+p, conns, 0, duration)
				if t.redisPort != 0 && m.rps > 0 {
					m.redisPerReq = float64(redisScripts(t.redisPort)-scripts) / (m.rps * duration.Seconds())
				}
				if allocs1 := mallocs(t.admin); allocs0 >= 0 && allocs1 >= 0 && m.rps > 0 {
					m.allocs = (allocs1 - allocs0) / (m.rps * duration.Seconds())
				}
				if profiled != nil {
					if err := profiled(); err != nil {
						return err
					}
				}
				res.add(s, t.name, m)
				fmt.Fprintf(os.Stderr, "round %d %-8s %-8s %s\n", r, s, t.name, m)
			}
		}
		// (d) open-model load at half of nginx's pass-through rate, and
		// (d') at half of Seawall's own, where it is not near its limit.
		for _, fixed := range []struct{ key, of string }{{"fixed", "nginx"}, {"fixed-own", "seawall"}} {
			rate := rates.rate(r, fixed.key, res.best("pass", fixed.of))
			for i := range targets {
				if !want(fixed.key) || rate == 0 {
					break
				}
				t := targets[(i+r)%len(targets)]
				if _, ok := t.paths["pass"]; !ok {
					continue
				}
				var profiled func() error
				if r == 0 && t.name == "seawall" {
					profiled = startProfile(adminPort, duration, filepath.Join(profileDir, fixed.key+".pprof"))
				}
				scripts := redisScripts(t.redisPort)
				m := measure(t, "GET", t.base+t.paths["pass"], conns*4, rate, duration)
				if t.redisPort != 0 && m.rps > 0 {
					m.redisPerReq = float64(redisScripts(t.redisPort)-scripts) / (m.rps * duration.Seconds())
				}
				if profiled != nil {
					if err := profiled(); err != nil {
						return err
					}
				}
				res.add(fixed.key, t.name, m)
				fmt.Fprintf(os.Stderr, "round %d %-8s %-8s %s (offered %.0f/s)\n", r, fixed.key, t.name, m, rate)
			}
		}
		for _, key := range []string{"async", "async-both", "async-pg", "async-deliver"} {
			if !want(key) {
				continue
			}
			m, err := asyncRow(key, r)
			if err != nil {
				return err
			}
			res.add(key, "seawall", m)
			fmt.Fprintf(os.Stderr, "round %d %-13s %-8s %s\n", r, key, "seawall", m)
		}
	}
	if want("syscalls") {
		// System calls per request in (a), with strace attached: Seawall
		// beside nginx, the lean reference, and beside its bare engine when
		// the engines run.
		var traced []*target
		for _, t := range targets { // the engines' prototypes among them when they run
			if t.name == "seawall" || t.name == "nginx" || t.name == engineOf["pass"] {
				traced = append(traced, t)
			}
		}
		for _, t := range traced {
			n, by, err := syscallsPerRequest(t, t.base+t.paths["pass"], conns, 3*time.Second)
			if err != nil {
				return err
			}
			results.syscalls = append(results.syscalls, fmt.Sprintf("%s %.1f (%s)", t.name, n, by))
			fmt.Fprintf(os.Stderr, "syscalls %-8s %.2f per request: %s\n", t.name, n, by)
		}
	}
	if want("pair") {
		if err := runPairs(results, targets, conns, duration, rounds); err != nil {
			return err
		}
	}
	table := results.table()
	fmt.Println(table)
	if write {
		return writeSection("docs/benchmarks.md", table, duration, rounds, conns)
	}
	return nil
}

// pairSpec is one pair runPairs runs: Seawall beside another target on
// one core at once, each offered rate by its own generator.
type pairSpec struct {
	scenario, beside string
	rate             float64
}

// pairSpecs: Seawall beside its bare engine, for what Seawall adds to it,
// beside itself on its other engine (engine: net/http; ADR 0006), and
// beside nginx for the cache hit, whose 64 KiB row can be set by the
// generator (when both serve what one wrk can take) rather than by them.
var pairSpecs = []pairSpec{
	{"pass", "proto-fasthttp-h1", 5000},
	{"pass", "seawall-nethttp", 5000},
	{"cache1k", "proto-fasthttp-static", 10000},
	{"cache1k", "nginx", 10000},
	{"cache64k", "nginx", 4000},
}

// runPairs runs each of pairSpecs rounds times: both targets are pinned
// to CPU 1, and each is offered the same fixed rate, well inside what
// the two take together. At like rates the two pay alike for what the
// kernel does a response: served closed-loop, the one at the lower rate
// wakes its generator more often and pays more a request for it.
func runPairs(results *results, targets []*target, conns int, duration time.Duration, rounds int) error {
	byName := map[string]*target{}
	for _, t := range targets {
		byName[t.name] = t
	}
	seawall := byName["seawall"]
	for _, sp := range pairSpecs {
		other := byName[sp.beside]
		if seawall == nil || other == nil {
			return fmt.Errorf("pair: no %s to run beside Seawall", sp.beside)
		}
		for r := 1; r <= rounds; r++ {
			var sw, o measurement
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				sw = measure(seawall, "GET", seawall.base+seawall.paths[sp.scenario], conns*4, sp.rate, duration)
			}()
			go func() {
				defer wg.Done()
				o = measure(other, "GET", other.base+other.paths[sp.scenario], conns*4, sp.rate, duration)
			}()
			wg.Wait()
			p := pair{scenario: sp.scenario, beside: sp.beside, rate: sp.rate, seawall: sw, other: o}
			results.pairs = append(results.pairs, p)
			fmt.Fprintf(os.Stderr, "round %d pair %-8s seawall %s | %s %s | CPU a request %.2f×\n", r, sp.scenario, sw, sp.beside, o, p.cpuRatio())
		}
	}
	return nil
}

// goUpstream puts the Go upstream behind every row.
var goUpstream bool

// fixedRate, when set, is the rate of the fixed-rate rows.
var fixedRate float64

// offered holds the rate of each fixed-rate row: half of the (a) result
// it follows in the first round counted, kept for every round after it,
// so that the rounds of a row, whose median is taken by p99, all carry
// one load. A profile's round 0 offers half of its own (a), kept for no
// other. fixedRate, when set, is every round's.
type offered map[string]float64

func (o offered) rate(round int, key string, pass float64) float64 {
	if fixedRate > 0 {
		return fixedRate
	}
	if round == 0 {
		return pass / 2
	}
	if v, ok := o[key]; ok {
		return v
	}
	if pass > 0 {
		o[key] = pass / 2
	}
	return pass / 2
}

// traceRuns makes startProfile fetch runtime traces.
var traceRuns bool

// seawallEnv is added to the environment of the pinned Seawall.
var seawallEnv = flag.String("seawall-env", "", "space-separated NAME=value pairs added to the pinned Seawall's environment (e.g. GOGC=400)")

// startProfile fetches a CPU profile of Seawall from its admin listener
// over most of a measurement; the function returned waits for it and
// writes it to path.
func startProfile(adminPort int, d time.Duration, path string) func() error {
	done := make(chan error, 1)
	go func() {
		kind := "profile"
		if traceRuns {
			kind = "trace"
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s?seconds=%d", adminPort, kind, max(1, int(d.Seconds())-1))
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			done <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+benchAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("profile: %s: %s", resp.Status, b)
		}
		if err == nil {
			err = os.WriteFile(path, b, 0o600)
		}
		done <- err
	}()
	return func() error { return <-done }
}

func ensureInstalled() error {
	missing := false
	for _, name := range []string{"nginx", "haproxy", "caddy", "wrk", "strace", "taskset", "redis-server"} {
		if _, err := exec.LookPath(name); err != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("nginx, haproxy, caddy, wrk, strace and redis-server are needed: apt-get install nginx haproxy caddy wrk strace redis-server")
	}
	fmt.Fprintln(os.Stderr, "installing nginx, haproxy, caddy, wrk, strace and redis-server from Debian's packages")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "nginx", "haproxy", "caddy", "wrk", "strace", "redis-server"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	return nil
}

// asyncClients is how many apps enqueue at once in the (e) rows.
const asyncClients = 64

func freePorts(n int) []int {
	var out []int
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return out
}

// exited says whether a started process has ended (a zombie not yet
// waited for).
func exited(p *exec.Cmd) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

func waitListening(port int) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			_ = c.Close()
			return nil
		}
	}
	return fmt.Errorf("nothing listening on port %d", port)
}

func warm(url string) {
	resp, err := http.Get(url)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

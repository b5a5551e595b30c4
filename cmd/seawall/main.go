// Command seawall is a resilience proxy for third-party HTTP APIs.
//
//	seawall serve -c seawall.yaml      run the proxy
//	seawall validate -c seawall.yaml   check a config and report every problem
//	seawall fake -listen ADDR          run a controllable fake third party
//	seawall reload -c seawall.yaml     make a running Seawall reload its config
//	seawall jobs list|show|retry|cancel  operate the job queue
//	seawall dead list|replay           inspect and replay dead jobs
//	seawall version                    print the build's version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/server"
	"github.com/seawall/seawall/internal/tracing"
)

const usage = `usage: seawall <command> [flags]

commands:
  demo                see it all in one command: Seawall before a scripted vendor
                      in trouble, with a live dashboard (see seawall demo -h)
  serve -c FILE       run the proxy with the config in FILE
  validate -c FILE    check a config; print every problem and exit 1 if any
  fake [flags]        run a controllable fake third-party API (see -h)
  reload [-c FILE]    make a running Seawall read its config file again
  jobs VERB           list, show, retry or cancel jobs of a running Seawall
  dead VERB           list or replay dead jobs (see seawall jobs -h)
  shift VERB          move an upstream's traffic away from a zone or an
                      endpoint, list or remove shifts (see seawall shift -h)
  incidents VERB      list incidents, or show one's timeline (see seawall incidents -h)
  usage               each vendor's calls, savings, cost and quota, today and this month
  cluster             the live replicas sharing the global upstreams' limits (redis)
  version             print the version, commit and Go version of this build
`

// commands are the verbs run knows, for "did you mean".
var commands = []string{"demo", "serve", "validate", "fake", "reload", "jobs", "dead", "shift", "incidents", "usage", "cluster", "version", "help"}

const serveHelp = `usage: seawall serve -c FILE

Runs the proxy with the config in FILE (default seawall.yaml), on its app
listener (listen) and admin listener (admin.listen).

Signals:
  SIGINT, SIGTERM  stop accepting, let in-flight calls and job deliveries
                   finish within shutdown_grace (default 15s); deliveries
                   cut off then are requeued without spending an attempt
  SIGHUP           reload the config file: if valid, its upstreams and limits
                   replace the running ones at once; if not, the problems are
                   logged and the running config stays (also: seawall reload,
                   and -watch)

Environment:
  ${NAME} and ${NAME:-default} in the config are read from the environment,
  ${file:/path} from a file; secrets so read are never logged.
  SEAWALL_ADMIN_TOKEN is the admin token for the jobs and dead commands.

Files:
  DATA_DIR/admin-token  the admin API's token when admin.token is unset,
                        generated at first start (mode 0600); data_dir
                        defaults to ./data

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return demoCmd(args[1:], stdout, stderr)
	case "serve":
		return serve(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "fake":
		return fake(args[1:], stderr)
	case "reload":
		return reloadCmd(args[1:], stdout, stderr)
	case "jobs", "dead":
		return jobsCmd(args[0], args[1:], stdout, stderr)
	case "shift":
		return shiftCmd(args[1:], stdout, stderr)
	case "incidents":
		return incidentsCmd(args[1:], stdout, stderr)
	case "usage":
		return usageCmd(args[1:], stdout, stderr)
	case "cluster":
		return clusterCmd(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		hint := ""
		if near := config.Nearest(args[0], commands); near != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", near)
		}
		fmt.Fprintf(stderr, "seawall: unknown command %q%s\n%s", args[0], hint, usage)
		return 2
	}
}

// commit is the commit this build came from, set by the documented build
// (-ldflags "-X main.commit=..."): a build with -buildvcs=false, or from a
// copy of the source without .git, carries no VCS stamp of its own.
var commit string

// version describes this build: the module's version, the commit it was
// built from, and the Go that built it.
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return describe(bi, commit, runtime.Version())
}

// describe is version's text for the build info bi (nil when there is
// none), the commit the linker set, and the Go version; the VCS stamp,
// when present, wins over the linker's commit.
func describe(bi *debug.BuildInfo, linked, goVersion string) string {
	v, rev, modified := "(devel)", linked, false
	if bi != nil {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	out := "seawall " + v
	if rev != "" {
		out += " commit " + rev[:min(12, len(rev))]
		if modified {
			out += " (modified)"
		}
	}
	return out + " " + goVersion
}

// loadConfig reads the -c flag and loads that config, printing every
// problem. A non-zero exit code means the command must stop with it.
func loadConfig(name string, args []string, stderr io.Writer) (path string, cfg *config.Config, exit int) {
	path, cfg, _, exit = loadConfigWatch(name, args, stderr)
	return path, cfg, exit
}

// loadConfigWatch is loadConfig, reading serve's -watch flag too.
func loadConfigWatch(name string, args []string, stderr io.Writer) (path string, cfg *config.Config, watch bool, exit int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&path, "c", "seawall.yaml", "config file")
	if name == "serve" {
		fs.BoolVar(&watch, "watch", false, "reload the config when its file, or a ${file:} secret it names, changes (checked every second)")
	}
	if name == "serve" {
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), serveHelp)
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		return path, nil, false, 2
	}
	cfg, err := config.LoadFile(path)
	var ps config.Problems
	switch {
	case errors.As(err, &ps):
		warnings := 0
		for _, p := range ps {
			if p.Warning {
				warnings++
			}
		}
		fmt.Fprintf(stderr, "%s\n%s: %d problem(s)", ps.Error(), path, len(ps)-warnings)
		if warnings > 0 {
			fmt.Fprintf(stderr, ", %d warning(s)", warnings)
		}
		fmt.Fprintln(stderr)
		return path, nil, false, 1
	case err != nil:
		fmt.Fprintf(stderr, "seawall: %v\n", err)
		return path, nil, false, 1
	}
	return path, cfg, watch, 0
}

func validate(args []string, stdout, stderr io.Writer) int {
	path, cfg, exit := loadConfig("validate", args, stderr)
	if exit != 0 {
		return exit
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w.String())
	}
	warnings := ""
	if n := len(cfg.Warnings); n > 0 {
		warnings = fmt.Sprintf(", %d warning(s)", n)
	}
	fmt.Fprintf(stdout, "%s: ok (%d upstreams%s)\n", path, len(cfg.Upstreams), warnings)
	return 0
}

func serve(args []string, stderr io.Writer) int {
	path, cfg, watch, exit := loadConfigWatch("serve", args, stderr)
	if exit != 0 {
		return exit
	}
	log := server.NewLogger(cfg.Log)
	for _, w := range cfg.Warnings {
		log.Warn("config warning", "file", w.File, "line", w.Line, "path", w.Path, "warning", w.Msg)
	}
	stopTracing, err := tracing.Setup(context.Background(), version(), log)
	if err != nil {
		fmt.Fprintf(stderr, "seawall: %v\n", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(ctx) // the last spans, flushed
	}()
	s, lns, err := server.Listen(cfg, log, version())
	if err != nil {
		fmt.Fprintf(stderr, "seawall: %v\n", err)
		return 1
	}
	s.ConfigPath = path
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s.Go("reload on SIGHUP", func() {
		for {
			select {
			case <-hup:
				s.Reload()
			case <-ctx.Done():
				return
			}
		}
	})
	if watch {
		s.Go("config watch", func() { server.Watch(ctx, path, time.Second, func() { s.Reload() }) })
	}
	if err := s.Serve(ctx, lns); err != nil {
		log.Error("stopped with error", "error", err)
		return 1
	}
	return 0
}

func fake(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9999", "address to listen on")
	var b fakeapi.Behavior
	fs.Float64Var(&b.ErrorRate, "error-rate", 0, "share of calls (0-1) answered with -error-status")
	fs.IntVar(&b.ErrorStatus, "error-status", 503, "status of failed calls")
	latMin := fs.Duration("latency-min", 0, "least delay before answering")
	latMax := fs.Duration("latency-max", 0, "most delay before answering (uniform between min and max)")
	fs.IntVar(&b.QuotaPerSecond, "quota", 0, "answer 429 past this many calls a second (0: no quota)")
	fs.IntVar(&b.RetryAfter, "retry-after", 0, "Retry-After seconds on quota 429s and outage errors")
	fs.StringVar(&b.Body, "body", "", `response body (default {"ok":true})`)
	fs.Float64Var(&b.LeakyRate, "leaky-rate", 0, "a leaky bucket without burst, as nginx limit_req: 429 for a call sooner than 1/rate after the last accepted (0: none)")
	window := fs.String("window", "", `a fixed-window quota stated in headers, LIMIT/PERIOD[/FORM] with FORM x-ratelimit, ratelimit or llm, like "100/10s"`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b.LatencyMin, b.LatencyMax = fakeapi.Duration(*latMin), fakeapi.Duration(*latMax)
	if *window != "" {
		w, err := fakeapi.ParseWindow(*window)
		if err != nil {
			fmt.Fprintf(stderr, "seawall fake: -window: %v\n", err)
			return 2
		}
		b.Window = w
	}
	srv := &http.Server{Addr: *listen, Handler: fakeapi.New(b), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "fake API on http://%s (control: PUT /_fake/behavior, GET /_fake/calls, POST /_fake/reset)\n", *listen)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	routine.New(slog.Default()).Go("fake shutdown", func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	})
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "seawall fake: %v\n", err)
		return 1
	}
	return 0
}

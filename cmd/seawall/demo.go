package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/demo"
	"github.com/seawall/seawall/internal/routine"
	"github.com/seawall/seawall/internal/server"
)

const demoHelp = `usage: seawall demo [-listen ADDR] [-admin ADDR] [-phase 15s]

Runs Seawall in front of a scripted third party, in this one process, with
a small load of sync, cached, async and deferred calls, and prints the
dashboard's address with a one-time login link. The third party goes
through its phases, each named here as it starts: healthy, errors, a
brownout of one endpoint, an outage, a rate-limit squeeze, healthy again;
then it starts over. Everything it writes is in a temporary directory,
removed when it stops (Ctrl-C).

Flags:
`

// demoCmd is `seawall demo`: wiring only; the script is internal/demo's.
func demoCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoHelp); fs.PrintDefaults() }
	listen := fs.String("listen", "127.0.0.1:8080", "the app listener's address")
	admin := fs.String("admin", "127.0.0.1:9090", "the admin listener's address (the dashboard)")
	phase := fs.Duration("phase", 15*time.Second, "how long each phase lasts (at least 3s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *phase < 3*time.Second {
		fmt.Fprintf(stderr, "seawall demo: -phase %v: at least 3s, so that each phase can show\n", *phase)
		return 2
	}
	dir, err := os.MkdirTemp("", "seawall-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "seawall demo: %v\n", err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(dir); err == nil {
			fmt.Fprintf(stdout, "stopped; removed %s\n", dir)
		}
	}()
	logFile, err := os.OpenFile(filepath.Join(dir, "seawall.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(stderr, "seawall demo: %v\n", err)
		return 1
	}
	defer func() { _ = logFile.Close() }()
	log := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g := routine.New(log)
	vendor, err := demo.StartVendor(g)
	if err != nil {
		fmt.Fprintf(stderr, "seawall demo: %v\n", err)
		return 1
	}
	defer vendor.Close()
	cfg, err := config.Parse("demo.yaml", []byte(vendor.Config(*listen, *admin, dir)), func(string) (string, bool) { return "", false })
	if err != nil {
		fmt.Fprintf(stderr, "seawall demo: the demo's config: %v\n", err)
		return 1
	}
	s, lns, err := server.Listen(cfg, log, version())
	if err != nil {
		fmt.Fprintf(stderr, "seawall demo: %v (another Seawall, or the demo, running? -listen and -admin choose other ports)\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	g.Go("demo seawall", func() { served <- s.Serve(ctx, lns) })
	app, adminURL := "http://"+s.Addrs()[0].String(), "http://"+s.Addrs()[1].String()
	fmt.Fprintf(stdout, `Seawall demo: a scripted vendor "shop" with endpoints a-1, a-2 (zone a, Seawall's) and b-1, b-2 (zone b).
  the dashboard:  %s%s   (one-time login link; the token is in %s)
  the app side:   %s/shop/items/1   (also /shop/catalog/1, cached; POST /shop/orders/1, async)
  the event log:  %s/admin/events
  Seawall's log:  %s
Ctrl-C stops it and removes everything it wrote.

`, adminURL, s.Board.LoginLink(), filepath.Join(dir, "admin-token"), app, adminURL, logFile.Name())
	load := demo.Load(ctx, g, app)
	script(ctx, stdout, vendor, *phase)
	load.Wait()
	err = <-served
	vendor.Close()
	if left := g.Wait(5 * time.Second); len(left) > 0 {
		fmt.Fprintf(stderr, "seawall demo: still running: %v\n", left)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "seawall demo: %v\n", err)
		return 1
	}
	return 0
}

// script walks the vendor through its phases, naming each, until ctx ends.
func script(ctx context.Context, stdout io.Writer, v *demo.Vendor, each time.Duration) {
	for i := 0; ; i = (i + 1) % len(demo.Phases) {
		v.Set(i)
		p := demo.Phases[i]
		fmt.Fprintf(stdout, "%s  phase %d/%d, %s: %s\n", time.Now().Format("15:04:05"), i+1, len(demo.Phases), p.Name, p.Says)
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "stopping…")
			return
		case <-time.After(each):
		}
	}
}

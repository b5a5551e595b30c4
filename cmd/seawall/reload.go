package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/seawall/seawall/internal/server"
)

// reloadCmd runs "seawall reload": the running Seawall reads its config
// file again, through the admin API.
func reloadCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addAdminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: seawall reload [-c FILE]\n\nThe running Seawall reads its config file again (as on SIGHUP) and says\nwhat it applied, or why it kept the running config.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := flags.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "seawall reload: %v\n", err)
		return 1
	}
	var out server.Reloaded
	if err := c.do(http.MethodPost, "/admin/reload", nil, &out); err != nil {
		fmt.Fprintf(stderr, "seawall reload: %v\n", err)
		return 1
	}
	if out.Result != server.ReloadApplied {
		fmt.Fprintf(stderr, "seawall reload: rejected; the running config stays:\n  %s\n", strings.Join(out.Problems, "\n  "))
		return 1
	}
	line := func(what string, names []string) {
		if len(names) > 0 {
			fmt.Fprintf(stdout, "  %-8s %s\n", what, strings.Join(names, ", "))
		}
	}
	fmt.Fprintln(stdout, "reloaded:")
	line("added", out.Added)
	line("changed", out.Changed)
	line("removed", out.Removed)
	line("kept", out.Kept)
	for name, n := range out.StillQueued {
		fmt.Fprintf(stdout, "  upstream %s was removed: its %d unfinished jobs stay queued until it is configured again\n", name, n)
	}
	if len(out.NeedRestart) > 0 {
		fmt.Fprintf(stdout, "  these apply at the next start only: %s\n", strings.Join(out.NeedRestart, ", "))
	}
	return 0
}

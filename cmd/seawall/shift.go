package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/seawall/seawall/internal/upstream"
)

const shiftUsage = `usage:
  seawall shift add -upstream U (-zone Z | -endpoint URL) [-for 30m]
                             move U's traffic away from a zone or an
                             endpoint at once, until -for is up (default 1h,
                             at most 72h) or the shift is removed
  seawall shift list         the shifts in force
  seawall shift remove ID    end a shift at once

Each talks to a running Seawall's admin API, found from the config (-c,
default seawall.yaml) or given with -admin URL and -token (or
SEAWALL_ADMIN_TOKEN). A shift that would leave an upstream no endpoint
is refused.
`

// shiftCmd runs "seawall shift …": the operator's manual zonal shift.
func shiftCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stderr, shiftUsage)
		return 2
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("shift "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addAdminFlags(fs)
	upstreamName := fs.String("upstream", "", "the upstream whose traffic moves")
	zone := fs.String("zone", "", "the zone traffic moves away from")
	endpoint := fs.String("endpoint", "", "the endpoint URL traffic moves away from")
	d := fs.Duration("for", time.Hour, "how long the shift lasts (at most 72h)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "seawall shift %s: %v\n", verb, err)
		return 1
	}
	switch {
	case verb == "add" && (*upstreamName == "" || (*zone == "") == (*endpoint == "")):
		fmt.Fprint(stderr, "seawall shift add: give -upstream, and -zone or -endpoint (one of them)\n\n"+shiftUsage)
		return 2
	case verb == "remove" && len(pos) != 1:
		fmt.Fprint(stderr, "seawall shift remove: give one shift ID (see seawall shift list)\n\n"+shiftUsage)
		return 2
	case verb != "add" && verb != "list" && verb != "remove":
		fmt.Fprintf(stderr, "seawall shift: unknown verb %q\n\n%s", verb, shiftUsage)
		return 2
	}
	c, err := flags.client(stderr)
	if err != nil {
		return fail(err)
	}
	switch verb {
	case "add":
		q := url.Values{"upstream": {*upstreamName}, "for": {d.String()}}
		if *zone != "" {
			q.Set("zone", *zone)
		} else {
			q.Set("endpoint", *endpoint)
		}
		var s upstream.ShiftView
		if err := c.do(http.MethodPost, "/admin/shifts", q, &s); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "shift %s: upstream %s away from %s until %s\n", s.ID, s.Upstream, away(s), s.Until.Local().Format(time.DateTime))
	case "list":
		var list []upstream.ShiftView
		if err := c.do(http.MethodGet, "/admin/shifts", nil, &list); err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUPSTREAM\tAWAY FROM\tUNTIL\tIN FORCE ON")
		for _, s := range list {
			on := "this replica"
			if s.Shared {
				on = "every replica"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Upstream, away(s), s.Until.Local().Format(time.DateTime), on)
		}
		_ = tw.Flush()
	case "remove":
		var out map[string]string
		if err := c.do(http.MethodDelete, "/admin/shifts/"+url.PathEscape(pos[0]), nil, &out); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "shift %s removed\n", pos[0])
	}
	return 0
}

func away(s upstream.ShiftView) string {
	if s.Zone != "" {
		return "zone " + s.Zone
	}
	return "endpoint " + s.Endpoint
}

package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/seawall/seawall/internal/admin"
)

const clusterHelp = `usage: seawall cluster [-json]

The live replicas that share the global upstreams' limits through Redis:
each one's id, zone, version, when it started and when it was last heard
of, and any global upstream whose limits the replicas disagree on. It
talks to a running Seawall's admin API, found from the config (-c,
default seawall.yaml) or given with -admin URL and -token (or
SEAWALL_ADMIN_TOKEN).
`

const zoneReadyHelp = `usage: seawall cluster zone-ready ZONE [-for 1h]

Has the replicas of ZONE report ready on /readyz for the given time
(default 1h, at most 24h), whatever their calls say: an operator's word
that the zone's trouble is over, or is not the zone's (docs/distributed.md,
"The sick zone"). It talks to a running Seawall's admin API, found from the
config (-c, default seawall.yaml) or given with -admin URL and -token.
`

// clusterCmd runs "seawall cluster".
func clusterCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "zone-ready" {
		return zoneReadyCmd(args[1:], stdout, stderr)
	}
	var v admin.ClusterView
	if done, exit := adminView("cluster", clusterHelp, "/admin/cluster", args, stdout, stderr, &v); done {
		return exit
	}
	if !v.Shared {
		fmt.Fprintln(stdout, "this Seawall shares nothing: its config has no redis block")
		return 0
	}
	if v.Error != "" {
		fmt.Fprintf(stderr, "seawall cluster: the list could not be read: %s\n", v.Error)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tZONE\tVERSION\tSTARTED\tLAST SEEN\tGLOBAL UPSTREAMS")
	for _, r := range v.Replicas {
		id := r.ID
		if id == v.Self {
			id += " (this one)"
		}
		names := make([]string, 0, len(r.Digests))
		for n := range r.Digests {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%s\n", id, dash(r.Zone), dash(r.Version), r.Started.Local().Format(time.DateTime),
			time.Since(r.Seen).Round(time.Second), dash(strings.Join(names, ", ")))
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%d live replica(s); Redis %s\n", len(v.Replicas), map[bool]string{true: "answers", false: "does not answer"}[v.RedisUp])
	writeIsolations(stdout, v)
	if len(v.Disagree) > 0 {
		fmt.Fprintf(stdout, "their limits differ for: %s (they share one pace: make the configs agree)\n", strings.Join(v.Disagree, ", "))
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeIsolations lists each endpoint a replica has isolated, with the
// replicas that have: each judges by its own calls, so an endpoint
// isolated on one replica only points at that replica's path to it.
func writeIsolations(w io.Writer, v admin.ClusterView) {
	on := map[string][]string{} // "upstream endpoint" → replicas
	for _, r := range v.Replicas {
		for up, urls := range r.Isolated {
			for _, u := range urls {
				on[up+"  "+u] = append(on[up+"  "+u], r.ID)
			}
		}
	}
	if len(on) == 0 {
		fmt.Fprintln(w, "no endpoint isolated on any replica")
		return
	}
	keys := make([]string, 0, len(on))
	for k := range on {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "isolated: %s on %d of %d replica(s): %s\n", k, len(on[k]), len(v.Replicas), strings.Join(on[k], ", "))
	}
}

// zoneReadyCmd runs "seawall cluster zone-ready ZONE".
func zoneReadyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cluster zone-ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addAdminFlags(fs)
	d := fs.Duration("for", time.Hour, "how long the zone counts as ready (at most 24h)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), zoneReadyHelp+"\nFlags:\n"); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "seawall cluster zone-ready: name one zone\n\n"+zoneReadyHelp)
		return 2
	}
	c, err := flags.client(stderr)
	if err == nil {
		var out struct {
			Zone string  `json:"zone"`
			For  float64 `json:"ready_for_seconds"`
		}
		if err = c.do(http.MethodPost, "/admin/cluster/zone-ready", url.Values{"zone": {pos[0]}, "for": {d.String()}}, &out); err == nil {
			fmt.Fprintf(stdout, "zone %s counts as ready for %s: its replicas answer /readyz 200 within a second\n", out.Zone, time.Duration(out.For*float64(time.Second)))
			return 0
		}
	}
	fmt.Fprintf(stderr, "seawall cluster zone-ready: %v\n", err)
	return 1
}

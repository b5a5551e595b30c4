package main

import (
	"fmt"
	"io"
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

// clusterCmd runs "seawall cluster".
func clusterCmd(args []string, stdout, stderr io.Writer) int {
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

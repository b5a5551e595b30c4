package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	u "github.com/seawall/seawall/internal/usage"
)

const usageHelp = `usage: seawall usage [-json]

What each upstream was called today and this month (billable calls,
retries and probes included), what the cache, deduplication and failing
fast saved, what that cost, and the share of its quota used. With a
redis block, the global upstreams' calls are also listed for all the
replicas together, with each replica's part; their quota counts those. It talks to
a running Seawall's admin API, found from the config (-c, default
seawall.yaml) or given with -admin URL and -token (or SEAWALL_ADMIN_TOKEN).
`

// usageCmd runs "seawall usage".
func usageCmd(args []string, stdout, stderr io.Writer) int {
	var reports []u.Report
	if done, exit := adminView("usage", usageHelp, "/admin/usage", args, stdout, stderr, &reports); done {
		return exit
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tTODAY\tSAVED TODAY\tTHIS MONTH\tSAVED THIS MONTH\tQUOTA USED\tSPENT TODAY\tSAVED TODAY\tSPENT THIS MONTH\tSAVED THIS MONTH")
	for _, r := range reports {
		quota := "-"
		if r.Quota != nil {
			quota = fmt.Sprintf("%.1f%%", 100*r.Quota.Share)
		}
		money := func(v string) string {
			if v == "" {
				return "-"
			}
			return v + " " + r.Currency
		}
		saved := func(f u.Figures) int64 { return f.SavedCache + f.SavedDedup + f.SavedFailFast }
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Upstream, r.Today.Billable, saved(r.Today), r.Month.Billable, saved(r.Month),
			quota, money(r.Today.Spent), money(r.Today.Saved), money(r.Month.Spent), money(r.Month.Saved))
	}
	_ = tw.Flush()
	printCluster(stdout, reports)
	return 0
}

// printCluster lists the global upstreams' counts with the other
// replicas': the cluster's total and each replica's part.
func printCluster(w io.Writer, reports []u.Report) {
	var shared []u.Report
	for _, r := range reports {
		if r.Cluster != nil {
			shared = append(shared, r)
		}
	}
	if len(shared) == 0 {
		return
	}
	fmt.Fprintln(w, "\nAll replicas (global upstreams; the quota counts these):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tTODAY\tTHIS MONTH\tTODAY BY REPLICA")
	for _, r := range shared {
		c := r.Cluster
		var parts []string
		for _, id := range slices.Sorted(maps.Keys(c.Today.Replicas)) {
			p := fmt.Sprintf("%s %d", id, c.Today.Replicas[id])
			if id == c.Replica {
				p += " (this one)"
			}
			parts = append(parts, p)
		}
		if before := c.Today.Billable - sum(c.Today.Replicas); before > 0 {
			parts = append(parts, fmt.Sprintf("%d counted before Redis last restarted", before))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Upstream, c.Today.Billable, c.Month.Billable, strings.Join(parts, ", "))
	}
	_ = tw.Flush()
}

// adminView runs a command that shows one admin endpoint: it parses the
// admin flags and -json, reads path into out, and prints it as JSON when
// asked. done says the command is over (printed, or failed), with exit;
// otherwise the caller prints out as text.
func adminView(name, help, path string, args []string, stdout, stderr io.Writer, out any) (done bool, exit int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprint(fs.Output(), help+"\nFlags:\n"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return true, 2
	}
	c, err := flags.client(stderr)
	if err == nil {
		err = c.do(http.MethodGet, path, nil, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "seawall %s: %v\n", name, err)
		return true, 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return true, 0
	}
	return false, 0
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

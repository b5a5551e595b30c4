package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/seawall/seawall/internal/incident"
)

const incidentsUsage = `usage:
  seawall incidents list                      the incidents kept, newest first
  seawall incidents show ID [-format markdown]
                                              one incident's timeline, with its
                                              evidence and impact; markdown for a
                                              status page or a chat

Each talks to a running Seawall's admin API, found from the config (-c,
default seawall.yaml) or given with -admin URL and -token (or
SEAWALL_ADMIN_TOKEN).
`

// incidentsCmd runs "seawall incidents …".
func incidentsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stderr, incidentsUsage)
		return 2
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("incidents "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addAdminFlags(fs)
	format := fs.String("format", "text", "text or markdown")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	switch {
	case verb != "list" && verb != "show":
		fmt.Fprintf(stderr, "seawall incidents: unknown verb %q\n\n%s", verb, incidentsUsage)
		return 2
	case verb == "show" && len(pos) != 1:
		fmt.Fprint(stderr, "seawall incidents show: give one incident ID (see seawall incidents list)\n\n"+incidentsUsage)
		return 2
	case *format != "text" && *format != "markdown":
		fmt.Fprintf(stderr, "seawall incidents: -format %q: want text or markdown\n", *format)
		return 2
	}
	c, err := flags.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "seawall incidents %s: %v\n", verb, err)
		return 1
	}
	if verb == "list" {
		var list []incident.Incident
		if err := c.do(http.MethodGet, "/admin/incidents", nil, &list); err != nil {
			fmt.Fprintf(stderr, "seawall incidents list: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCLUSTER\tUPSTREAM\tSTATE\tSEVERITY\tOPENED\tSUMMARY")
		for _, in := range list {
			cluster := "-" // replicas share no incidents, or Redis did not answer
			if in.Cluster != 0 {
				cluster = fmt.Sprint(in.Cluster)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, cluster, in.Upstream, in.State(), in.Severity, in.Opened.Local().Format(time.DateTime), truncate(in.Summary, 80))
		}
		_ = tw.Flush()
		return 0
	}
	var in incident.Incident
	if err := c.do(http.MethodGet, "/admin/incidents/"+url.PathEscape(pos[0]), nil, &in); err != nil {
		fmt.Fprintf(stderr, "seawall incidents show: %v\n", err)
		return 1
	}
	if err := incident.WriteTimeline(stdout, in, *format == "markdown"); err != nil {
		fmt.Fprintf(stderr, "seawall incidents show: %v\n", err)
		return 1
	}
	return 0
}

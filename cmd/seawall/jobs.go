package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/seawall/seawall/internal/admin"
	"github.com/seawall/seawall/internal/jobs"
)

const jobsUsage = `usage:
  seawall jobs list   [-upstream U] [-state S] [-after ID] [-limit N] [-json]
  seawall jobs show   ID
  seawall jobs retry  ID     run a finished job (dead, canceled, succeeded) again
  seawall jobs cancel ID     cancel a job not yet finished
  seawall dead list   [-upstream U] [-after ID] [-limit N] [-json]
  seawall dead replay ID...  run these dead jobs again
  seawall dead replay -all [-upstream U]
                             run every dead job (of one upstream) again

Each talks to a running Seawall's admin API, found from the config
(-c, default seawall.yaml: admin.listen, and admin.token or else the
token file Seawall generated under data_dir) or given with -admin URL
and -token (or SEAWALL_ADMIN_TOKEN).
`

// adminClient calls the admin API of a running Seawall.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// jobsCmd runs "seawall jobs …" and "seawall dead …".
func jobsCmd(group string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stderr, jobsUsage)
		return 2
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet(group+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := addAdminFlags(fs)
	upstream := fs.String("upstream", "", "only this upstream's jobs")
	state := fs.String("state", "", "only jobs in this state: queued, running, retrying, succeeded, dead, canceled")
	after := fs.Int64("after", 0, "list jobs with a larger id (paging)")
	limit := fs.Int("limit", 50, "jobs per page (at most 1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "replay every dead job (of -upstream, if given)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	c, err := flags.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "seawall %s: %v\n", group, err)
		return 1
	}
	q := url.Values{}
	if *upstream != "" {
		q.Set("upstream", *upstream)
	}
	list := func(path string) int {
		if *state != "" {
			q.Set("state", *state)
		}
		q.Set("limit", strconv.Itoa(*limit))
		if *after > 0 {
			q.Set("after", strconv.FormatInt(*after, 10))
		}
		var p admin.Page
		if err := c.do(http.MethodGet, path, q, &p); err != nil {
			return fail(stderr, group, err)
		}
		if *asJSON {
			return printJSON(stdout, p)
		}
		printJobs(stdout, p)
		return 0
	}
	oneID := func() (int64, bool) {
		if len(pos) != 1 {
			fmt.Fprintf(stderr, "seawall %s %s: want one job id\n%s", group, verb, jobsUsage)
			return 0, false
		}
		id, ok := jobs.ParseID(pos[0])
		if !ok {
			fmt.Fprintf(stderr, "seawall %s %s: %q is not a job id\n", group, verb, pos[0])
			return 0, false
		}
		return id, true
	}
	switch group + " " + verb {
	case "jobs list":
		return list("/admin/jobs")
	case "dead list":
		return list("/admin/dead")
	case "jobs show", "jobs retry", "jobs cancel":
		id, ok := oneID()
		if !ok {
			return 2
		}
		path, method := fmt.Sprintf("/admin/jobs/%d", id), http.MethodGet
		if verb != "show" {
			path, method = path+"/"+verb, http.MethodPost
		}
		var out admin.Detail
		if err := c.do(method, path, nil, &out); err != nil {
			return fail(stderr, group, err)
		}
		if *asJSON || verb == "show" {
			return printJSON(stdout, out)
		}
		fmt.Fprintf(stdout, "job %d is now %s\n", out.ID, out.State)
		return 0
	case "dead replay":
		return c.replay(pos, *all, q, stdout, stderr)
	}
	fmt.Fprintf(stderr, "seawall %s: unknown verb %q\n%s", group, verb, jobsUsage)
	return 2
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// replay runs dead jobs again: those named, or all with -all.
func (c *adminClient) replay(ids []string, all bool, q url.Values, stdout, stderr io.Writer) int {
	if all == (len(ids) > 0) {
		fmt.Fprintf(stderr, "seawall dead replay: name job ids, or give -all (not both)\n%s", jobsUsage)
		return 2
	}
	if all {
		var out admin.Replayed
		if err := c.do(http.MethodPost, "/admin/dead/replay", q, &out); err != nil {
			return fail(stderr, "dead", err)
		}
		fmt.Fprintf(stdout, "replayed %d dead job(s)\n", out.Replayed)
		return 0
	}
	failed := 0
	for _, s := range ids {
		var out admin.Replayed
		if _, ok := jobs.ParseID(s); !ok {
			fmt.Fprintf(stderr, "seawall dead replay: %q is not a job id\n", s)
			failed++
			continue
		}
		if err := c.do(http.MethodPost, "/admin/dead/replay", url.Values{"id": {s}}, &out); err != nil {
			fmt.Fprintf(stderr, "seawall dead replay: job %s: %v\n", s, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "replayed job %s\n", s)
	}
	fmt.Fprintf(stdout, "replayed %d of %d\n", len(ids)-failed, len(ids))
	if failed > 0 {
		return 1
	}
	return 0
}

// adminFlags are the flags every command of a running Seawall's admin
// API takes: -c, -admin and -token.
type adminFlags struct{ cfgPath, base, token *string }

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		cfgPath: fs.String("c", "seawall.yaml", "config file, for admin.listen and admin.token"),
		base:    fs.String("admin", "", "admin API URL, like http://127.0.0.1:9090 (default: from the config)"),
		token:   fs.String("token", os.Getenv("SEAWALL_ADMIN_TOKEN"), "admin token (default: $SEAWALL_ADMIN_TOKEN, else from the config)"),
	}
}

// client is the admin API the flags name.
func (f adminFlags) client(stderr io.Writer) (*adminClient, error) {
	return newAdminClient(*f.cfgPath, *f.base, *f.token, stderr)
}

func newAdminClient(cfgPath, base, token string, stderr io.Writer) (*adminClient, error) {
	if base == "" {
		_, cfg, exit := loadConfig("jobs", []string{"-c", cfgPath}, stderr)
		if exit != 0 {
			return nil, fmt.Errorf("no -admin URL, and the config %s could not be read", cfgPath)
		}
		if cfg.Admin.Listen == "off" {
			return nil, errors.New("admin.listen is off in the config: the admin API is not served")
		}
		host, port, err := net.SplitHostPort(cfg.Admin.Listen)
		if err != nil {
			return nil, err
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		base = "http://" + net.JoinHostPort(host, port)
		if token == "" {
			token = cfg.Admin.Token.Value()
		}
		if token == "" {
			t, err := admin.ReadToken(cfg.AdminTokenFile())
			if err != nil {
				return nil, fmt.Errorf("admin.token is not set, and the token Seawall generates is not readable: %w", err)
			}
			token = t
		}
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// do calls the admin API and decodes its JSON answer into out; an error
// answer becomes an error carrying its detail.
func (c *adminClient) do(method, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the admin API: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return errors.New("the admin API refused the token (401): give -token or SEAWALL_ADMIN_TOKEN, or -c the running Seawall's config")
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return fmt.Errorf("%s (%d)", p.Detail, resp.StatusCode)
		}
		return fmt.Errorf("admin API answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

func printJobs(w io.Writer, p admin.Page) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tUPSTREAM\tREQUEST\tATTEMPT\tCREATED\tLAST ERROR")
	for _, j := range p.Jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s\t%d/%d\t%s\t%s\n", j.ID, j.State, j.Upstream, j.Method, truncate(j.Path, 40),
			j.Attempt, j.MaxAttempts, j.CreatedAt.Local().Format(time.DateTime), truncate(j.LastError, 60))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d job(s)", len(p.Jobs))
	if p.NextAfter > 0 {
		fmt.Fprintf(w, "; next page: -after %d", p.NextAfter)
	}
	fmt.Fprintln(w)
}

func printJSON(w io.Writer, v any) int {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	_ = e.Encode(v)
	return 0
}

func fail(stderr io.Writer, group string, err error) int {
	fmt.Fprintf(stderr, "seawall %s: %v\n", group, err)
	return 1
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

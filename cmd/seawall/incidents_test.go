package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// A scripted incident, end to end with the real binary: an endpoint is
// isolated, then the whole vendor fails, so the breaker opens, stale
// answers are served and jobs dead-letter; the vendor heals and the
// incident resolves. "seawall incidents show" prints one timeline with
// the evidence and impact counts that match the metrics, and it is there
// again after Seawall is killed and started again.
func TestIncidentTimeline(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of scripted outage; go test without -short runs it")
	}
	fakes := map[string]*fakeapi.Server{}
	var eps strings.Builder
	for _, z := range []string{"a", "b", "c"} {
		fakes[z] = fakeapi.New(fakeapi.Behavior{Headers: map[string]string{"Cache-Control": "max-age=1"}})
		srv := httptest.NewServer(fakes[z])
		defer srv.Close()
		fmt.Fprintf(&eps, "      - {url: %q, zone: %s}\n", srv.URL, z)
	}
	setAll := func(b fakeapi.Behavior) {
		b.Headers = map[string]string{"Cache-Control": "max-age=1"}
		for _, f := range fakes {
			f.Set(b)
		}
	}
	addr, adminAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seawall.yaml")
	doc := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: %s}
log: {level: warn}
incidents: {resolve_after: 3s}
jobs: {store: %q, max_attempts: 2, schedule: [100ms]}
upstreams:
  pay:
    endpoints:
%s    breaker: {window: 2s, min_calls: 10, open_duration: 1s}
    retry: {max_attempts: 2, base_delay: 10ms}
    health: {window: 6s, min_calls: 10}
    cache: {stale_if_error: 10m}
    routes:
      - {name: list, match: "GET /v1/list", mode: cached}
      - {name: events, match: "POST /v1/events", mode: async}
`, addr, adminAddr, testAdminToken, filepath.Join(dir, "jobs.db"), eps.String())
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	bin := buildSeawall(t)
	proc := startServe(t, bin, cfg, base)
	defer func() { _ = proc.Process.Kill(); _ = proc.Wait() }()

	// App traffic, bounded in time: sync GETs, cached GETs.
	halt := appLoad(4, 10*time.Millisecond, 2*time.Minute, func(w, i int) string {
		if i%4 == 0 {
			return base + "/pay/v1/list"
		}
		return fmt.Sprintf("%s/pay/v1/items/%d-%d", base, w, i)
	}, nil)
	defer halt()
	client := &http.Client{Timeout: 5 * time.Second}

	time.Sleep(7 * time.Second) // a health window of healthy calls
	fakes["c"].Set(fakeapi.Behavior{Down: true})
	time.Sleep(6 * time.Second) // c is isolated
	setAll(fakeapi.Behavior{Down: true})
	for i := range 3 { // jobs that will dead-letter
		resp, err := client.Post(base+"/pay/v1/events", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	time.Sleep(6 * time.Second) // the breaker opens and flaps; stale answers; dead letters
	setAll(fakeapi.Behavior{})
	time.Sleep(4 * time.Second) // the breaker closes

	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "-c", cfg), &out, &errb)
		return code, out.String(), errb.String()
	}
	var id string
	resolved := regexp.MustCompile(`(?m)^(\d+)\s+-\s+pay\s+resolved`) // CLUSTER: - for one Seawall
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		_, out, _ := cli("incidents", "list")
		if m := resolved.FindStringSubmatch(out); m != nil {
			// The app's traffic ran until now: c is probed back only by
			// calls, however late its isolation ends on a busy machine.
			halt()
			id = m[1]
			if strings.Count(out, " pay ") != 1 {
				t.Errorf("one outage, more than one incident:\n%s", out)
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no resolved incident for pay:\n%s", out)
		}
	}
	code, timeline, errs := cli("incidents", "show", id)
	if code != 0 {
		t.Fatalf("incidents show: exit %d %s", code, errs)
	}
	t.Logf("seawall incidents show %s:\n%s", id, timeline)
	for _, want := range []string{"endpoint " + "http://", "isolated: failure rate", "breaker opened — ", "calls failed in 2s", "breaker closed", "dead-lettered", "serving stale answers"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("the timeline lacks %q", want)
		}
	}
	// The impact matches the metrics: nothing else failed fast, went
	// stale or dead-lettered while the test ran.
	metrics := scrapeMetrics(t, "http://"+adminAddr+"/metrics")
	impact := map[string]string{
		"failed fast":        `seawall_breaker_rejections_total{upstream="pay"}`,
		"served stale":       `seawall_cache_lookups_total{result="stale",upstream="pay"}`,
		"jobs dead lettered": `seawall_job_dead_letters_total{upstream="pay"}`,
	}
	for label, metric := range impact {
		m := regexp.MustCompile(label + ` (\d+)`).FindStringSubmatch(timeline)
		if m == nil || m[1] == "0" {
			t.Errorf("impact %q missing or zero in the timeline", label)
			continue
		}
		if got, _ := strconv.ParseFloat(m[1], 64); got != metrics[metric] {
			t.Errorf("impact %s = %v, the metric %s = %v", label, got, metric, metrics[metric])
		}
	}
	_, md, _ := cli("incidents", "show", id, "-format", "markdown")
	if !strings.Contains(md, "### Incident "+id+": pay (resolved") || !strings.Contains(md, "| breaker.opened: breaker opened — ") {
		t.Errorf("markdown timeline:\n%s", md)
	}

	// Killed and started again: the timeline is kept in the job store.
	_ = proc.Process.Signal(syscall.SIGKILL)
	_ = proc.Wait()
	proc = startServe(t, bin, cfg, base)
	code, again, errs := cli("incidents", "show", id)
	if code != 0 || again != timeline {
		t.Errorf("after a restart: exit %d %s\n%s\nwant the same timeline", code, errs, again)
	}
}

// scrapeMetrics reads the Prometheus text format into name{labels} → value.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Transport: withToken(http.DefaultTransport)}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

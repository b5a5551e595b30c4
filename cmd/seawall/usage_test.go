package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
	"github.com/seawall/seawall/internal/incident"
	u "github.com/seawall/seawall/internal/usage"
)

// Acceptance row 5 of cost and quota, with the real binary: a daily quota
// of 100 with warnings at 80 and 95. The warnings come at the 80th and
// 95th billable call; call 101 gets 429 quota-exhausted with Retry-After
// until the next local midnight of the quota's time zone; an async job
// waits without spending attempts; after a SIGKILL and a restart the
// count resumes (the bound: what was counted in the last second).
func TestQuotaAcrossAKill(t *testing.T) {
	fake := fakeapi.New(fakeapi.Behavior{})
	up := httptest.NewServer(fake)
	defer up.Close()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seawall.yaml")
	const zone = "Pacific/Kiritimati" // UTC+14: its midnight is not UTC's
	doc := fmt.Sprintf(`listen: %s
admin: {listen: %s, token: %s}
log: {level: warn}
jobs: {store: %q}
upstreams:
  sms:
    url: %s
    cost: {per_call: "0.0075", currency: EUR}
    quota: {daily: 100, timezone: %s, warn_at: [80, 95]}
    routes:
      - {name: send, match: "POST /v1/send", mode: async}
`, addr, adminAddr, testAdminToken, filepath.Join(dir, "jobs.db"), up.URL, zone)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	bin := buildSeawall(t)
	proc := startServe(t, bin, cfg, base)
	defer func() { _ = proc.Process.Kill(); _ = proc.Wait() }()
	ops := &http.Client{Transport: withToken(http.DefaultTransport), Timeout: 5 * time.Second}
	get := func(path string) *http.Response {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	events := func() []incident.Event {
		resp, err := ops.Get("http://" + adminAddr + "/admin/events?upstream=sms")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var evs []incident.Event
		_ = json.NewDecoder(resp.Body).Decode(&evs)
		return evs
	}
	usedAt := map[string][]float64{}
	for i := 1; i <= 100; i++ {
		if resp := get(fmt.Sprintf("/sms/v1/status/%d", i)); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
		if i == 79 || i == 80 || i == 94 || i == 95 {
			time.Sleep(100 * time.Millisecond) // events go through a queue
			for _, e := range events() {
				if e.Type == incident.QuotaWarning {
					usedAt[strconv.Itoa(i)] = append(usedAt[strconv.Itoa(i)], e.Evidence["used"].(float64))
				}
			}
		}
	}
	if len(usedAt["79"]) != 0 || fmt.Sprint(usedAt["80"]) != "[80]" || len(usedAt["94"]) != 1 || fmt.Sprint(usedAt["95"]) != "[80 95]" {
		t.Errorf("warnings seen after calls 79, 80, 94, 95: %v; want one at the 80th and one at the 95th", usedAt)
	}

	refused := func(when string) {
		t.Helper()
		resp, err := http.Get(base + "/sms/v1/status/101")
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Type string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		_ = resp.Body.Close()
		loc, _ := time.LoadLocation(zone)
		now := time.Now().In(loc)
		want := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, loc).Sub(now)
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || !strings.HasSuffix(p.Type, ":quota-exhausted") || time.Duration(after)*time.Second-want > 3*time.Second || want-time.Duration(after)*time.Second > 3*time.Second {
			t.Errorf("%s: %d %s Retry-After %ds, want 429 quota-exhausted and about %s (midnight in %s)", when, resp.StatusCode, p.Type, after, want.Round(time.Second), zone)
		}
	}
	refused("call 101")
	calls := fake.Count()

	// An async job waits for the next day, spending no attempt.
	resp, err := http.Post(base+"/sms/v1/send", "application/json", strings.NewReader(`{"to":"+1"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	job := resp.Header.Get("Seawall-Job-Id")
	time.Sleep(1500 * time.Millisecond) // and the counts saved
	var j struct {
		State   string
		Attempt int
	}
	jr, err := http.Get(base + "/_seawall/jobs/" + job)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(jr.Body).Decode(&j)
	_ = jr.Body.Close()
	if resp.StatusCode != http.StatusAccepted || j.Attempt != 0 || j.State == "succeeded" || fake.Count() != calls {
		t.Errorf("the async job: %d, %+v, vendor calls %d → %d; want accepted, waiting, no attempt, no call", resp.StatusCode, j, calls, fake.Count())
	}

	// Killed and started again: the count resumes.
	_ = proc.Process.Signal(syscall.SIGKILL)
	_ = proc.Wait()
	proc = startServe(t, bin, cfg, base)
	refused("after the restart")
	ur, err := ops.Get("http://" + adminAddr + "/admin/usage")
	if err != nil {
		t.Fatal(err)
	}
	var reports []u.Report
	_ = json.NewDecoder(ur.Body).Decode(&reports)
	_ = ur.Body.Close()
	if len(reports) != 1 || reports[0].Quota == nil || reports[0].Quota.UsedToday != 100 || reports[0].Today.Spent != "0.75" || reports[0].Currency != "EUR" {
		t.Errorf("usage after the restart: %+v, want 100 calls used, 0.75 EUR spent", reports)
	}
	if fake.Count() != calls {
		t.Errorf("the vendor got %d calls past its quota", fake.Count()-calls)
	}
}

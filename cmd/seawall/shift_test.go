package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/fakeapi"
)

// Acceptance row 6 of endpoint health: "seawall shift add -zone a -for 1m"
// moves all traffic off zone a within a second, a shift expires by
// itself, "shift remove" undoes one at once, and a shift of the last zone
// is refused. The real binary serves; the commands talk to its admin API.
func TestShiftCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out real isolation and shift expiry (about 9 s): the full run runs it")
	}
	zones := []string{"a", "b", "c"}
	fakes := map[string]*fakeapi.Server{}
	var eps strings.Builder
	for _, z := range zones {
		fakes[z] = fakeapi.New(fakeapi.Behavior{})
		srv := httptest.NewServer(fakes[z])
		defer srv.Close()
		fmt.Fprintf(&eps, "      - {url: %q, zone: %s}\n", srv.URL, z)
	}
	one := httptest.NewServer(fakeapi.New(fakeapi.Behavior{}))
	defer one.Close()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "seawall.yaml")
	doc := fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: %s}\nlog: {level: warn}\nupstreams:\n  api:\n    endpoints:\n%s  solo:\n    url: %s\n",
		addr, adminAddr, testAdminToken, eps.String(), one.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	proc := startServe(t, buildSeawall(t), cfg, base)
	defer func() { _ = proc.Process.Signal(syscall.SIGTERM); _ = proc.Wait() }()

	// App traffic for the whole test, bounded in time.
	var failed, sent sync.Map
	halt := appLoad(4, 5*time.Millisecond, time.Minute,
		func(w, i int) string { return fmt.Sprintf("%s/api/items/%d-%d", base, w, i) },
		func(w, i int, resp *http.Response, err error) {
			sent.Store(fmt.Sprint(w, i), true)
			if err != nil || resp.StatusCode != 200 {
				failed.Store(fmt.Sprint(w, i), err)
			}
		})
	defer halt()

	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "-c", cfg), &out, &errb)
		return code, out.String(), errb.String()
	}
	// callsOn counts zone z's calls that arrived in [from, to).
	callsOn := func(z string, from, to time.Time) int {
		n := 0
		for _, c := range fakes[z].Calls() {
			if !c.At.Before(from) && c.At.Before(to) {
				n++
			}
		}
		return n
	}
	idOf := regexp.MustCompile(`^shift (\S+):`)

	time.Sleep(time.Second)
	code, out, errs := cli("shift", "add", "-upstream", "api", "-zone", "a", "-for", "1m")
	shifted := time.Now()
	m := idOf.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("shift add: exit %d\n%s%s", code, out, errs)
	}
	id := m[1]
	time.Sleep(3 * time.Second)
	if n := callsOn("a", shifted.Add(time.Second), time.Now()); n != 0 {
		t.Errorf("zone a got %d calls from 1s after the shift on", n)
	}
	if callsOn("b", shifted, time.Now()) == 0 || callsOn("c", shifted, time.Now()) == 0 {
		t.Error("b and c did not take the traffic")
	}
	last := time.Time{}
	for _, c := range fakes["a"].Calls() {
		if c.At.After(last) {
			last = c.At
		}
	}
	t.Logf("shift %s: zone a's last call came %s after the command returned", id, last.Sub(shifted).Round(time.Millisecond))
	if code, out, _ := cli("shift", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "zone a") {
		t.Errorf("shift list: exit %d\n%s", code, out)
	}
	// The operator's view: each endpoint with its zone, state, figures
	// and share, and the shift in force.
	ops := &http.Client{Transport: withToken(http.DefaultTransport), Timeout: 5 * time.Second}
	resp, err := ops.Get("http://" + adminAddr + "/admin/upstreams")
	if err != nil {
		t.Fatal(err)
	}
	var view []struct {
		Name      string
		Endpoints []struct {
			URL, Zone, State string
			Shifted          bool
			Calls            int
			Share            float64
			P90Ms            float64 `json:"p90_ms"`
			FailureRate      float64 `json:"failure_rate"`
		}
		Shifts []struct{ ID string }
	}
	err = json.NewDecoder(resp.Body).Decode(&view)
	_ = resp.Body.Close()
	if err != nil || len(view) != 2 || view[0].Name != "api" || len(view[0].Endpoints) != 3 || len(view[0].Shifts) != 1 {
		t.Fatalf("GET /admin/upstreams: %v %+v", err, view)
	}
	for _, e := range view[0].Endpoints {
		if e.State != "healthy" || e.Zone == "" || e.Calls == 0 || e.Shifted != (e.Zone == "a") {
			t.Errorf("endpoint view %+v", e)
		}
	}

	// The last zone is refused, with the reason; so is the one endpoint of
	// an upstream, an unknown zone, and a shift past 72h.
	if code, out, errs := cli("shift", "add", "-upstream", "api", "-zone", "b"); code != 0 {
		t.Fatalf("shift of zone b: exit %d %s%s", code, out, errs)
	}
	refusals := []struct {
		args []string
		want string
	}{
		{[]string{"-upstream", "api", "-zone", "c"}, "would leave upstream api no endpoint"},
		{[]string{"-upstream", "solo", "-zone", "x"}, "upstream solo has one endpoint"},
		{[]string{"-upstream", "api", "-zone", "nowhere"}, `no endpoint in "nowhere"`},
		{[]string{"-upstream", "api", "-zone", "c", "-for", "73h"}, "a shift lasts up to"},
		{[]string{"-upstream", "nope", "-zone", "c"}, `no upstream "nope"`},
	}
	for _, r := range refusals {
		if code, _, errs := cli(append([]string{"shift", "add"}, r.args...)...); code != 1 || !strings.Contains(errs, r.want) {
			t.Errorf("shift add %v: exit %d %q, want 1 and %q", r.args, code, errs, r.want)
		}
	}
	if code, _, errs := cli("shift", "remove", "api-99"); code != 1 || !strings.Contains(errs, "not in force") {
		t.Errorf("removing an unknown shift: exit %d %q", code, errs)
	}

	// Remove undoes it at once.
	if code, out, errs := cli("shift", "remove", id); code != 0 {
		t.Fatalf("shift remove: exit %d %s%s", code, out, errs)
	}
	removed := time.Now()
	time.Sleep(time.Second)
	if n := callsOn("a", removed, time.Now()); n == 0 {
		t.Error("zone a got no call in the second after the shift was removed")
	}

	// A shift expires by itself. It starts while the command runs, so it
	// is surely in force from the command's return (added) until 2s after
	// the command was issued (issued): a call counted past that may
	// rightly be zone a's.
	issued := time.Now()
	code, out, errs = cli("shift", "add", "-upstream", "api", "-zone", "a", "-for", "2s")
	added := time.Now()
	if code != 0 {
		t.Fatalf("shift add -for 2s: exit %d %s%s", code, out, errs)
	}
	time.Sleep(4 * time.Second)
	if n := callsOn("a", added.Add(time.Second), issued.Add(2*time.Second)); n != 0 {
		t.Errorf("zone a got %d calls during its 2s shift", n)
	}
	if n := callsOn("a", added.Add(2500*time.Millisecond), time.Now()); n == 0 {
		t.Error("zone a got no calls after its shift expired")
	}
	if code, out, _ := cli("shift", "list"); code != 0 || strings.Contains(out, "zone a") {
		t.Errorf("the expired shift is still listed: %s", out)
	}

	halt()
	n, bad := 0, 0
	sent.Range(func(any, any) bool { n++; return true })
	failed.Range(func(k, v any) bool {
		bad++
		t.Errorf("request %v failed: %v", k, v)
		return bad < 5
	})
	t.Logf("%d app requests, none failed by the shifts", n)
}

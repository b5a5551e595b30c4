package proxy_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/config"
	"github.com/seawall/seawall/internal/endpoint"
	"github.com/seawall/seawall/internal/upstream"
)

// Calls go to every endpoint, each answered on its own base path; the
// operator's view and the metrics show each endpoint; a shift moves
// traffic at once and survives a reload; a retry leaves the endpoint
// that failed. Quick enough for the main suite, race detector on.
func TestEndpointsServeViewAndShift(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "", "", "a", "b", "c")
	for i := range 300 {
		if r := f.s.get(fmt.Sprintf("/api/v1/x/%d?q=1", i)); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	for _, m := range f.ms {
		calls := m.fake.Calls()
		if len(calls) == 0 { // sequential calls favour the quickest; exploration reaches the rest
			t.Errorf("endpoint %s got none of 300 calls", m.name)
		}
		for _, c := range calls {
			if !strings.HasPrefix(c.Path, "/v1/x/") || !strings.HasSuffix(c.Path, "?q=1") {
				t.Errorf("endpoint %s got path %q", m.name, c.Path)
			}
		}
	}

	st := f.s.ups.Status()
	if len(st) != 1 || len(st[0].Endpoints) != 3 {
		t.Fatalf("status %+v", st)
	}
	total := 0.0
	for _, r := range st[0].Endpoints {
		if r.State != endpoint.Healthy || r.Calls == 0 || r.Zone == "" {
			t.Errorf("endpoint view %+v", r)
		}
		total += r.Share
	}
	if total < 0.99 || total > 1.01 {
		t.Errorf("shares add up to %.3f", total)
	}
	if n := f.s.metric("endpoint_calls_total"); n != 300 {
		t.Errorf("seawall_endpoint_calls_total = %v, want 300", n)
	}
	if n := f.s.metric("endpoint_state", "state=healthy"); n != 3 {
		t.Errorf("seawall_endpoint_state{state=healthy} sums to %v, want 3", n)
	}

	s, err := f.s.ups.AddShift("api", "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := len(f.member("a").fake.Calls())
	for i := range 60 {
		f.s.get(fmt.Sprintf("/api/v1/y/%d", i))
	}
	if after := len(f.member("a").fake.Calls()); after != before {
		t.Errorf("zone a got %d calls while shifted away", after-before)
	}
	if n := f.s.metric("endpoint_shifted", "zone=a"); n != 1 {
		t.Errorf("seawall_endpoint_shifted{zone=a} = %v", n)
	}
	if _, err := f.s.ups.AddShift("api", "b", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.ups.AddShift("api", "c", "", time.Minute); !errors.Is(err, endpoint.ErrShift) || !strings.Contains(err.Error(), "no endpoint") {
		t.Errorf("shifting the last zone: %v", err)
	}

	// A reload that changes the upstream keeps its shifts.
	doc := strings.Replace(f.s.doc, "endpoints:", "rate_limit: {rate: 1000/s}\n    endpoints:", 1)
	cfg, err := config.Parse("reload.yaml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if a := f.s.proxy.Apply(cfg); len(a.Changed) != 1 {
		t.Fatalf("reload: %+v", a)
	}
	if got := f.s.ups.Shifts(); len(got) != 2 || got[0].ID != s.ID {
		t.Errorf("after the reload, shifts %+v, want both kept", got)
	}
	before = len(f.member("a").fake.Calls())
	for i := range 30 {
		f.s.get(fmt.Sprintf("/api/v1/z/%d", i))
	}
	if after := len(f.member("a").fake.Calls()); after != before {
		t.Errorf("zone a got %d calls after the reload, still shifted", after-before)
	}
	if err := f.s.ups.RemoveShift(s.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ups.RemoveShift(s.ID); !errors.Is(err, upstream.ErrUnknownShift) {
		t.Errorf("removing it twice: %v", err)
	}

	// Every metric these exercised is in the operations table.
	doc2, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	families, err := f.s.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if name := fam.GetName(); strings.HasPrefix(name, "seawall_") && !strings.Contains(string(doc2), "`"+name+"`") {
			t.Errorf("docs/operations.md does not list %s", name)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/incident"
	"github.com/seawall/seawall/internal/testredis"
	"github.com/seawall/seawall/internal/testwait"
)

// switchVendor answers 500 while failing is set, else 200.
type switchVendor struct{ failing atomic.Bool }

func (v *switchVendor) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if v.failing.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// Several replicas, one view, acceptance 4: an outage seen by three
// replicas is one incident: a fake PagerDuty Events v2 endpoint gets one
// trigger and one resolve, with one dedup_key, and a webhook one of each;
// every replica lists the incident under the cluster's id, with the
// events of all three replicas, each with its replica and zone, and
// `seawall incidents` shows the same on each. Before, each replica paged
// with its own dedup_key: three triggers and three resolves.
func TestReplicasPageOncePerOutage(t *testing.T) {
	alone(t, "three replicas through a 15 s outage")
	redis := testredis.Start(t)
	vendor := &switchVendor{}
	vsrv := httptest.NewServer(vendor)
	defer vsrv.Close()
	pd, hook := &receiver{}, &receiver{}
	pdSrv, hookSrv := httptest.NewServer(pd), httptest.NewServer(hook)
	defer pdSrv.Close()
	defer hookSrv.Close()
	incidents := fmt.Sprintf(`incidents:
  resolve_after: 3s
  pagerduty: {routing_key: "rk-replicas-test", url: %q}
  webhooks:
    - {url: %q, secret: %q}`, pdSrv.URL, hookSrv.URL, hookSecret)
	replicas := startReplicas(t, 3, redis.URL(), "", vsrv.URL,
		"    retry: {max_attempts: 1}\n    breaker: {window: 2s, min_calls: 5, open_duration: 1s}\n", incidents)
	waitForReplicas(t, replicas, 3)

	vendor.failing.Store(true)
	offer(t, replicas, "/v/x", 20, 3*time.Second)
	vendor.failing.Store(false)
	offer(t, replicas, "/v/x", 20, 3*time.Second) // the breakers close on the calls that follow

	var pages []incident.PagerDutyEvent
	if _, ok := testwait.Within(20*time.Second, func() bool {
		pages = pages[:0]
		for _, g := range pd.accepted() {
			var ev incident.PagerDutyEvent
			if json.Unmarshal(g.body, &ev) == nil {
				pages = append(pages, ev)
			}
		}
		return len(pages) >= 2 && pages[len(pages)-1].EventAction == incident.Resolve
	}); !ok {
		t.Fatalf("PagerDuty got %d events within 20 s of the vendor healing, want a trigger and a resolve", len(pages))
	}
	time.Sleep(2 * time.Second) // a resolve another replica would send late
	pages = pages[:0]
	for _, g := range pd.accepted() {
		var ev incident.PagerDutyEvent
		_ = json.Unmarshal(g.body, &ev)
		pages = append(pages, ev)
	}
	count := map[string]int{}
	for _, ev := range pages {
		count[ev.EventAction+" "+ev.DedupKey]++
	}
	if len(pages) != 2 || pages[0].EventAction != incident.Trigger || pages[1].EventAction != incident.Resolve ||
		pages[0].DedupKey != pages[1].DedupKey || !strings.Contains(pages[0].DedupKey, "/cluster-") {
		t.Errorf("PagerDuty got %v, want one trigger and one resolve with one cluster dedup_key", count)
	}
	hooks := map[string]int{}
	for _, g := range hook.accepted() {
		var b incident.WebhookBody
		_ = json.Unmarshal(g.body, &b)
		hooks[b.Type]++
	}
	if hooks["incident.triggered"] != 1 || hooks["incident.resolved"] != 1 || len(hooks) != 2 {
		t.Errorf("the webhook got %v, want one incident.triggered and one incident.resolved", hooks)
	}

	var cluster int64
	for i, r := range replicas {
		var list []incident.Incident
		if !r.adminGet("/admin/incidents", &list) || len(list) == 0 {
			t.Fatalf("replica %d lists no incident", i+1)
		}
		in := list[0]
		if cluster == 0 {
			cluster = in.Cluster
		}
		if in.Cluster == 0 || in.Cluster != cluster || in.State() != "resolved" {
			t.Errorf("replica %d's incident: cluster %d, %s; want the cluster's %d, resolved", i+1, in.Cluster, in.State(), cluster)
		}
		var full incident.Incident
		if !r.adminGet(fmt.Sprintf("/admin/incidents/%d", in.ID), &full) {
			t.Fatalf("replica %d: incident %d could not be read", i+1, in.ID)
		}
		from := map[string]bool{}
		for _, e := range full.Events {
			if e.Replica == "" {
				t.Errorf("replica %d: event %q has no replica", i+1, e.Summary)
			}
			from[e.Replica] = true
		}
		if len(from) != 3 {
			t.Errorf("replica %d shows incident %d with events from %d replicas, want 3", i+1, in.ID, len(from))
		}
		var out, errOut strings.Builder
		if code := run([]string{"incidents", "show", fmt.Sprint(in.ID), "-admin", r.admin, "-token", "replica-admin-token-0001"}, &out, &errOut); code != 0 ||
			!strings.Contains(out.String(), fmt.Sprintf("cluster incident %d", cluster)) {
			t.Errorf("replica %d: seawall incidents show exited %d: %s%s", i+1, code, out.String(), errOut.String())
		}
		if i == 0 {
			t.Logf("PagerDuty got %v; the webhook %v; replica 1's timeline:\n%s", count, hooks, out.String())
		}
	}
}

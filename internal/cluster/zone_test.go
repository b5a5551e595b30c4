package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/seawall/seawall/internal/cluster"
	"github.com/seawall/seawall/internal/testredis"
)

// Several replicas, one view, item 5 on a real Redis: a zone is sick when
// its replicas see an upstream failing and none healthy while another
// zone's see it healthy and none failing; not when every zone sees it
// failing (the vendor's trouble), when no other zone has a healthy word,
// when only one zone has replicas, or for a replica with no zone; an
// operator's zone-ready overrides it.
func TestZoneVerdict(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		zones []string // the replicas' zones
		says  []string // each one's word
		sick  []bool   // the verdict on each one's zone
	}{
		{"one zone failing, the others healthy", []string{"a", "b", "c"}, []string{cluster.ZoneFailing, cluster.ZoneHealthy, cluster.ZoneHealthy}, []bool{true, false, false}},
		{"every zone failing", []string{"a", "b", "c"}, []string{cluster.ZoneFailing, cluster.ZoneFailing, cluster.ZoneFailing}, []bool{false, false, false}},
		{"no other zone has calls", []string{"a", "b", "c"}, []string{cluster.ZoneFailing, cluster.ZoneUnknown, cluster.ZoneUnknown}, []bool{false, false, false}},
		{"a zone split: one of its replicas healthy", []string{"a", "a", "b"}, []string{cluster.ZoneFailing, cluster.ZoneHealthy, cluster.ZoneHealthy}, []bool{false, false, false}},
		{"two of zone a failing, b healthy", []string{"a", "a", "b"}, []string{cluster.ZoneFailing, cluster.ZoneFailing, cluster.ZoneHealthy}, []bool{true, true, false}},
		{"one zone only", []string{"a", "a"}, []string{cluster.ZoneFailing, cluster.ZoneHealthy}, []bool{false, false}},
		{"no zone configured", []string{"", "b"}, []string{cluster.ZoneFailing, cluster.ZoneHealthy}, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ups []*cluster.Upstream
			for _, z := range tc.zones {
				ups = append(ups, openAs(t, srv.URL(), t.Name(), z, time.Second).Upstream("api"))
			}
			for i, u := range ups { // everyone's word first
				if _, err := u.ReportZone(ctx, tc.says[i]); err != nil {
					t.Fatal(err)
				}
			}
			for i, u := range ups {
				v, err := u.ReportZone(ctx, tc.says[i])
				if err != nil {
					t.Fatal(err)
				}
				if v.Sick != tc.sick[i] {
					t.Errorf("replica %d (zone %q, %s): sick %v, want %v; %s", i+1, tc.zones[i], tc.says[i], v.Sick, tc.sick[i], v.Evidence("api"))
				}
			}
		})
	}
	t.Run("override", func(t *testing.T) {
		a, b := openAs(t, srv.URL(), "override", "a", time.Second), openAs(t, srv.URL(), "override", "b", time.Second)
		ua, ub := a.Upstream("api"), b.Upstream("api")
		_, _ = ub.ReportZone(ctx, cluster.ZoneHealthy)
		if v, _ := ua.ReportZone(ctx, cluster.ZoneFailing); !v.Sick || v.Overridden {
			t.Fatalf("before the override: %+v", v)
		}
		if err := b.ZoneReady(ctx, "a", time.Minute); err != nil {
			t.Fatal(err)
		}
		if v, _ := ua.ReportZone(ctx, cluster.ZoneFailing); !v.Sick || !v.Overridden {
			t.Errorf("after zone-ready a: %+v, want sick and overridden", v)
		}
	})
}

package main

import (
	"strings"
	"testing"

	"github.com/seawall/seawall/internal/admin"
	"github.com/seawall/seawall/internal/cluster"
)

// seawall cluster lists each isolated endpoint with the replicas whose
// calls isolated it, out of the live ones.
func TestClusterListsIsolations(t *testing.T) {
	v := admin.ClusterView{Shared: true, Replicas: []cluster.Replica{
		{ID: "r1", Isolated: map[string][]string{"pay": {"https://b.example"}}},
		{ID: "r2", Isolated: map[string][]string{"pay": {"https://b.example"}, "geo": {"https://g.example"}}},
		{ID: "r3"},
	}}
	var out strings.Builder
	writeIsolations(&out, v)
	want := "isolated: geo  https://g.example on 1 of 3 replica(s): r2\nisolated: pay  https://b.example on 2 of 3 replica(s): r1, r2\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	writeIsolations(&out, admin.ClusterView{Shared: true, Replicas: []cluster.Replica{{ID: "r1"}}})
	if out.String() != "no endpoint isolated on any replica\n" {
		t.Errorf("with none isolated: %q", out.String())
	}
}

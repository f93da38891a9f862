package main

import (
	"fmt"
	"testing"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// membershipFabric starts the default fabric with tree as every host's
// policy, web workloads w1..wn (app=web) on host1 and db (app=db) added
// on host3, converged.
func membershipFabric(b *testing.B, tree map[string]any, n int) *sim.Fabric {
	b.Helper()
	topo := sim.Default()
	topo.PolicyTree = tree
	web := map[string]map[string]string{}
	for i := range n {
		web[fmt.Sprintf("w%d", i+1)] = map[string]string{"app": "web"}
	}
	for i := range topo.Nodes {
		switch topo.Nodes[i].Name {
		case "host1":
			topo.Nodes[i].Workloads = web
		case "host3":
			topo.Nodes[i].Workloads = map[string]map[string]string{"db": {"app": "db"}}
		}
	}
	f := simtest.Start(b, topo)
	if err := sim.WaitConverged(b.Context(), f); err != nil {
		b.Fatal(err)
	}
	if _, err := f.AddWorkload(b.Context(), "host3", "db"); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkPrivilegedGroupMembership is issue 13's membership
// propagation: from the start of a workload ADD on host1 (app=web, group
// web) to its IPv4 address in host3's policy set of group web (behind
// the other leaf), polling `nft list set` in host3 (a few ms each, in the
// figure; the first workload finds the set with `nft list table`). One
// workload per iteration; p50 and p99 are reported.
//
//	go test -c -o /tmp/s.test ./switchd && (cd switchd && /tmp/s.test -test.run '^$' -test.bench 'GroupMembership$' -test.benchtime 100x)
func BenchmarkPrivilegedGroupMembership(b *testing.B) {
	ns.Privileged(b)
	f := membershipFabric(b, groupsPolicy(`app == "web"`), b.N)
	b.ResetTimer()
	var set string
	lat := propagation(b, f, 0, b.N, &set)
	b.StopTimer()
	b.ReportMetric(quantileMS(lat, 0.5), "p50-ms")
	b.ReportMetric(quantileMS(lat, 0.99), "p99-ms")
}

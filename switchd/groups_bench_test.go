package main

import (
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// BenchmarkPrivilegedGroupMembership is issue 13's membership
// propagation: from the start of a workload ADD on host1 (app=web, group
// web) to its IPv4 address in host3's policy table (behind the other
// leaf), by polling `nft list table` in host3 (each poll ~ a few ms, in
// the figure). One workload per iteration; p50 and p99 are reported.
//
//	go test -c -o /tmp/s.test ./switchd && (cd switchd && /tmp/s.test -test.run '^$' -test.bench GroupMembership -test.benchtime 100x)
func BenchmarkPrivilegedGroupMembership(b *testing.B) {
	ns.Privileged(b)
	topo := sim.Default()
	topo.PolicyTree = groupsPolicy(`app == "web"`)
	web := map[string]map[string]string{}
	for i := range b.N {
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
	ctx := b.Context()
	if err := sim.WaitConverged(ctx, f); err != nil {
		b.Fatal(err)
	}
	if _, err := f.AddWorkload(ctx, "host3", "db"); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		w, err := f.AddWorkload(ctx, "host1", fmt.Sprintf("w%d", i+1))
		if err != nil {
			b.Fatal(err)
		}
		in := regexp.MustCompile(regexp.QuoteMeta(w.IPv4.String()) + `([^0-9]|$)`)
		for {
			out, err := f.Exec(ctx, "host3", "nft", "list", "table", "inet", "switchd")
			if err != nil {
				b.Fatal(err)
			}
			if in.MatchString(out) {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%v not in host3's table within 30 s", w.IPv4)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// scaleParam reads SWITCHD_SCALE_<name> (make scale sets them), else def.
func scaleParam(t *testing.T, name string, def int) int {
	v := os.Getenv("SWITCHD_SCALE_" + name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("SWITCHD_SCALE_%s=%q: want a number", name, v)
	}
	return n
}

// TestScalePrivileged is issue 15's scale check on a generated fabric
// (sim.ScaleTopology: racks of hosts dual-homed to leaf pairs, lean
// nodes, paced start): it converges, every node's kernel FIB is exactly
// what the plan and the hosts' endpoints say (sim.ExpectedFIBs), workloads
// attached at once across the hosts reach every FIB, a sample of workload
// pairs ping each other over IPv4 and IPv6, and after churn (workloads
// added and deleted on random hosts, a leaf killed and restarted, a spine
// link down and up) every FIB is exact again. The fabric has a generated
// default-deny policy (SWITCHD_SCALE_POLICY_GROUPS groups, 4 here, 0 for
// none): the pinged pairs are pairs it allows, _POLICY_PAIRS pairs it
// allows must connect on tcp/5432 and as many it denies must be dropped.
// The default size is small, so the suite keeps the generator and the
// verifier honest; make scale runs it big (SWITCHD_SCALE_HOSTS,
// _WORKLOADS, _LEAVES, _SPINES, _PAIRS, _CHURN; _SETTLE, seconds a FIB
// may take to become exact once it holds every route) and the times and
// memory it logs are docs/PERFORMANCE.md's.
func TestScalePrivileged(t *testing.T) {
	ns.Privileged(t)
	spec := sim.Scale{
		Hosts:        scaleParam(t, "HOSTS", 8),
		Leaves:       scaleParam(t, "LEAVES", 4),
		Spines:       scaleParam(t, "SPINES", 0),
		PolicyGroups: scaleParam(t, "POLICY_GROUPS", 4),
		Workloads:    scaleParam(t, "WORKLOADS", 4),
	}
	topo, err := sim.ScaleTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	run := sim.ScaleRun{
		Workloads:    spec.Workloads,
		Pairs:        scaleParam(t, "PAIRS", 50),
		Churn:        scaleParam(t, "CHURN", 20),
		PolicyGroups: spec.PolicyGroups,
		PolicyPairs:  scaleParam(t, "POLICY_PAIRS", 30),
		Seed:         uint64(time.Now().UnixNano()),
		Timeout:      5*time.Minute + time.Duration(len(topo.Nodes))*time.Second,
		Logf:         t.Logf,
	}
	sim.Settle = time.Duration(scaleParam(t, "SETTLE", int(sim.Settle/time.Second))) * time.Second
	t.Logf("topology %s: %d nodes, %d links; seed %d", topo.Name, len(topo.Nodes), len(topo.Links), run.Seed)
	avail0, err := sim.MemAvailable()
	if err != nil {
		t.Fatal(err)
	}

	run.Started = time.Now()
	f := simtest.Start(t, topo)
	t.Logf("up (paced start) in %v", time.Since(run.Started).Round(time.Millisecond))
	rep, err := run.Run(context.Background(), f)
	logMemory(t, f, avail0, "at the end")
	var steps []string
	for _, s := range rep.Steps {
		steps = append(steps, fmt.Sprintf("%s: routes %v settled %v exact %v", s.Name,
			s.Routes.Round(time.Millisecond), s.Settled.Round(time.Millisecond), s.Exact.Round(time.Millisecond)))
	}
	if p := rep.Policy; p != nil {
		steps = append(steps, fmt.Sprintf("policy (%d groups): %d allowed pairs, %d never connected, the last connected %v after the attach (median %v); %d denied pairs, %d probes not dropped; nft over %d hosts: %v; largest: %v",
			spec.PolicyGroups, p.Allowed, len(p.Blocked), p.Enforced.Round(time.Millisecond), p.Median.Round(time.Millisecond), p.Denied, len(p.Let), p.Hosts, p.Nft, p.NftMax))
	}
	t.Logf("SCALE hosts=%d leaves=%d spines=%d workloads=%d policy-groups=%d routes=%d converged=%v setup=%.1f/s\n  idle: %v\n  with workloads: %v\n  %s",
		spec.Hosts, countRole(topo, sim.Leaf), countRole(topo, sim.Spine), rep.Workloads, spec.PolicyGroups, rep.Routes,
		rep.Converged.Round(time.Millisecond), rep.SetupRate, rep.Idle, rep.RSS, strings.Join(steps, "\n  "))
	if err != nil {
		t.Fatal(err)
	}
}

func countRole(t *sim.Topology, r sim.Role) int {
	n := 0
	for _, x := range t.Nodes {
		if x.Role == r {
			n++
		}
	}
	return n
}

// logMemory logs the daemons' RSS and the machine's MemAvailable drop
// since avail0 (kernel memory of namespaces, veths and routes included).
func logMemory(t *testing.T, f *sim.Fabric, avail0 uint64, when string) {
	t.Helper()
	m, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	avail, err := sim.MemAvailable()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("memory %s: %v; MemAvailable down %.1f MiB", when, m, (float64(avail0)-float64(avail))/1024)
}

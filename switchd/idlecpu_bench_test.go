package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// BenchmarkPrivilegedIdleCPU measures issue 15's limit at 250 hosts: the
// CPU an idle node burns. It brings up a generated fabric
// (sim.ScaleTopology, lean nodes as make scale runs them), waits until it
// has converged and a settling time has passed, and reports the CPU time
// (user and system, /proc/PID/stat) each role's daemons take per node
// per minute of idling. With SWITCHD_BENCH_BASELINE naming another
// switchd binary (the build of an older commit) a second fabric runs
// that binary, both idling over the same window, so that the machine's
// load weighs on both alike; the ratios new/baseline are reported too.
//
//	SWITCHD_BENCH_HOSTS=20      hosts of the fabric (leaves, spines sized from it)
//	SWITCHD_BENCH_IDLE=60       seconds measured
//	SWITCHD_BENCH_SETTLE=20     seconds idled after convergence before measuring
//	SWITCHD_BENCH_HEAPDIR=DIR   with SWITCHD_BENCH_CPU_SECONDS: CPU profiles of
//	                            host1, leaf1, spine1 after the window
//
//	go build -o /tmp/sw-new ./switchd && SWITCHD_SIMTEST_BINARY=/tmp/sw-new SWITCHD_BENCH_BASELINE=/tmp/sw-old \
//	  go test -run '^$' -bench PrivilegedIdleCPU -benchtime 1x -timeout 30m ./switchd/
func BenchmarkPrivilegedIdleCPU(b *testing.B) {
	ns.Privileged(b)
	hosts := benchEnv(b, "SWITCHD_BENCH_HOSTS", 20)
	idle := time.Duration(benchEnv(b, "SWITCHD_BENCH_IDLE", 60)) * time.Second
	settle := time.Duration(benchEnv(b, "SWITCHD_BENCH_SETTLE", 20)) * time.Second
	topo, err := sim.ScaleTopology(sim.Scale{Hosts: hosts})
	if err != nil {
		b.Fatal(err)
	}
	bins := []string{simtest.SwitchdBinary(b)}
	if base := os.Getenv("SWITCHD_BENCH_BASELINE"); base != "" {
		bins = append(bins, base)
	}
	var sums [2]map[sim.Role]time.Duration
	var counts map[sim.Role]int
	for range b.N {
		var fs []*sim.Fabric
		for _, bin := range bins {
			f := simtest.Start(b, topo, simtest.WithSwitchd(bin))
			simtest.WaitConverged(b, f)
			fs = append(fs, f)
		}
		for _, f := range fs {
			simtest.WaitConverged(b, f) // still, after the others' start
		}
		time.Sleep(settle)
		var cpu0 []map[string]time.Duration
		for _, f := range fs {
			cpu0 = append(cpu0, cpuTimes(b, f, switchdNodes(f)))
		}
		time.Sleep(idle)
		for i, f := range fs {
			per, n := roleCPU(cpu0[i], cpuTimes(b, f, switchdNodes(f)), f)
			if sums[i] == nil {
				sums[i] = map[sim.Role]time.Duration{}
			}
			for r, d := range per {
				sums[i][r] += d
			}
			counts = n
			b.Logf("%s (%s): %s", f.Prefix, bins[i], cpuLine(per, n, idle))
		}
		for _, f := range fs {
			simtest.WaitConverged(b, f) // idling did not cost it its sessions
		}
		wait := cpuProfiles(b, fs[0], []string{"host1", "leaf1", "spine1"}, "idle")
		wait()
		for _, f := range fs {
			if err := f.Down(b.Context()); err != nil {
				b.Error(err)
			}
		}
	}
	// CPU ms per node per minute, mean over the iterations.
	perMin := func(d time.Duration, r sim.Role) float64 {
		return float64(d.Microseconds()) / 1000 / float64(counts[r]) / float64(b.N) / idle.Minutes()
	}
	for _, r := range []sim.Role{sim.Host, sim.Leaf, sim.Spine} {
		v := perMin(sums[0][r], r)
		b.ReportMetric(v, string(r)+"-cpu-ms/min")
		if sums[1] != nil {
			base := perMin(sums[1][r], r)
			b.ReportMetric(base, "base-"+string(r)+"-cpu-ms/min")
			if base > 0 {
				b.ReportMetric(v/base, string(r)+"-ratio")
			}
		}
	}
}

func benchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// switchdNodes names f's switchd nodes.
func switchdNodes(f *sim.Fabric) []string {
	var out []string
	for _, n := range f.Nodes() {
		if n.Kind == sim.Switchd {
			out = append(out, n.Name)
		}
	}
	return out
}

// roleCPU sums the CPU time each node took between two readings by the
// node's role, and counts the nodes of each role.
func roleCPU(before, after map[string]time.Duration, f *sim.Fabric) (map[sim.Role]time.Duration, map[sim.Role]int) {
	sum, n := map[sim.Role]time.Duration{}, map[sim.Role]int{}
	for _, node := range f.Nodes() {
		a, ok := after[node.Name]
		if !ok {
			continue
		}
		sum[node.Role] += a - before[node.Name]
		n[node.Role]++
	}
	return sum, n
}

// cpuLine is a log line: per role, the nodes and their mean CPU per
// minute.
func cpuLine(sum map[sim.Role]time.Duration, n map[sim.Role]int, over time.Duration) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%d %s %.0f ms/min each", n[r], r, float64(sum[r].Milliseconds())/float64(n[r])/over.Minutes()))
	}
	return strings.Join(parts, ", ")
}

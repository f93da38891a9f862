package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/bench/source"
	"github.com/switchd/switchd/sim/ns"
)

// Issue 13's scale: 50,000 endpoints in 100 groups, announced as
// membership routes by a route source (sim/bench/source) behind leaf1, as
// a rack's worth of switchd hosts would. Groups g1..g100 (ids 1001..1100,
// 500 members each) are declared on every host, and host3's db endpoint
// is selected by one policy per group whose rule's peer selector is the
// group's, so host3 holds them all in its policy sets.
const (
	scaleMembers   = 50000
	scaleGroups    = 100
	scaleFirstID   = 1001
	scaleSourceAS  = 65300
	scaleSourceLen = 31
)

var (
	scaleFirst     = netip.MustParsePrefix("10.200.0.0/32")
	scaleSourceIP  = netip.MustParseAddr("10.252.0.0")
	scaleLeafIP    = netip.MustParseAddr("10.252.0.1")
	scaleMemberRun = regexp.MustCompile(`10\.200\.[0-9]+\.[0-9]+`)
)

// scalePolicy is groupsPolicy (group web, policy db) with groups
// g1..g100 and a policy per group letting its members reach db.
func scalePolicy() map[string]any {
	tree := groupsPolicy(`app == "web"`)
	wp := tree["switchd:switchd"].(map[string]any)["workload-policy"].(map[string]any)
	groups := wp["groups"].(map[string]any)["group"].([]any)
	policies := wp["policies"].(map[string]any)["policy"].([]any)
	for i := range scaleGroups {
		name, sel := fmt.Sprintf("g%d", i+1), fmt.Sprintf(`grp == "g%d"`, i+1)
		groups = append(groups, map[string]any{"name": name, "config": map[string]any{"name": name, "id": scaleFirstID + i, "selector": sel}})
		rule := map[string]any{"sequence-id": 10, "config": map[string]any{"sequence-id": 10, "action": "ALLOW",
			"protocol": "TCP", "destination-port": []int{sim.PolicyPort}, "peer-selector": sel}}
		policies = append(policies, map[string]any{"name": "db-" + name,
			"config":        map[string]any{"name": "db-" + name, "order": 200 + i, "selector": `app == "db"`},
			"ingress-rules": map[string]any{"ingress-rule": []any{rule}}})
	}
	wp["groups"].(map[string]any)["group"] = groups
	wp["policies"].(map[string]any)["policy"] = policies
	return tree
}

// scaleSource is the membership routes of the scale run: prefix i is in
// group g(1 + i/500), with the marker.
func scaleSource(n int) (*source.Source, error) {
	per := max(1, n/scaleGroups)
	return source.New(source.Config{
		LocalAS: scaleSourceAS, RouterID: scaleSourceIP, NextHop: scaleSourceIP, First: scaleFirst, Count: n,
		Large: func(i int) [][3]uint32 {
			return [][3]uint32{{scaleSourceAS, 0, 1}, {scaleSourceAS, uint32(scaleFirstID + min(i/per, scaleGroups-1)), 0}}
		},
	})
}

// addSourceNeighbor links namespace src to leaf1 and gives leaf1 a
// passive neighbor there that takes everything and sends nothing.
func addSourceNeighbor(tb testing.TB, f *sim.Fabric, src *ns.NS) {
	tb.Helper()
	leaf := f.Namespace("leaf1")
	if err := ns.Veth(src, "gsrc", leaf, "gsrc"); err != nil {
		tb.Fatal(err)
	}
	if err := src.AddAddr("gsrc", netip.PrefixFrom(scaleSourceIP, scaleSourceLen)); err != nil {
		tb.Fatal(err)
	}
	if err := leaf.AddAddr("gsrc", netip.PrefixFrom(scaleLeafIP, scaleSourceLen)); err != nil {
		tb.Fatal(err)
	}
	editConfig(tb, f, "leaf1", func(tree map[string]any) {
		a := scaleSourceIP.String()
		nbs := bgpNeighborsOf(tree)
		nbs["neighbor"] = append(nbs["neighbor"].([]any), map[string]any{
			"neighbor-address": a,
			"config":           map[string]any{"neighbor-address": a, "peer-as": scaleSourceAS, "description": "membership source"},
			"transport":        map[string]any{"config": map[string]any{"passive-mode": true}},
			"afi-safis": map[string]any{"afi-safi": []any{map[string]any{"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST",
				"config": map[string]any{"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST", "enabled": true}}}},
			"apply-policy": map[string]any{"config": map[string]any{"default-import-policy": "ACCEPT_ROUTE", "default-export-policy": "REJECT_ROUTE"}},
		})
	})
}

// openSource opens the source's session to leaf1 from src, retrying
// while leaf1 applies its new neighbor.
func openSource(tb testing.TB, src *ns.NS, s *source.Source) *source.Session {
	tb.Helper()
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var conn net.Conn
		err := src.Do(func() (err error) {
			conn, err = (&net.Dialer{Timeout: time.Second}).DialContext(tb.Context(), "tcp", net.JoinHostPort(scaleLeafIP.String(), "179"))
			return err
		})
		if err == nil {
			var ss *source.Session
			if ss, err = s.Open(conn, 65001, 10*time.Second); err == nil {
				return ss
			}
		}
		last = err
	}
	tb.Fatalf("no session from the membership source to leaf1: %v", last)
	return nil
}

// memberCount counts the source's addresses in node's policy table.
func memberCount(ctx context.Context, f *sim.Fabric, node string) (int, error) {
	out, err := f.Exec(ctx, node, "nft", "list", "table", "inet", "switchd")
	return len(scaleMemberRun.FindAllStringIndex(out, -1)), err
}

// setWith is the name of the set in node's policy table holding a.
func setWith(ctx context.Context, f *sim.Fabric, node string, a netip.Addr) (string, error) {
	out, err := f.Exec(ctx, node, "nft", "list", "table", "inet", "switchd")
	if err != nil {
		return "", err
	}
	in := regexp.MustCompile(regexp.QuoteMeta(a.String()) + `([^0-9]|$)`)
	for _, part := range strings.Split(out, "\tset ")[1:] {
		name, body, _ := strings.Cut(part, " {")
		if end := strings.Index(body, "\n\t}"); end >= 0 && in.MatchString(body[:end]) {
			return name, nil
		}
	}
	return "", fmt.Errorf("%v in no set of %s's table", a, node)
}

// propagation adds workloads w(from+1)..w(from+n) on host1 and returns,
// per workload, the time from the start of its ADD to its IPv4 address in
// host3's set of group web (polled with `nft list set`, a few ms each).
func propagation(tb testing.TB, f *sim.Fabric, from, n int, set *string) []time.Duration {
	tb.Helper()
	ctx := tb.Context()
	var lat []time.Duration
	for i := from; i < from+n; i++ {
		start := time.Now()
		w, err := f.AddWorkload(ctx, "host1", fmt.Sprintf("w%d", i+1))
		if err != nil {
			tb.Fatal(err)
		}
		in := regexp.MustCompile(regexp.QuoteMeta(w.IPv4.String()) + `([^0-9]|$)`)
		for {
			var out string
			if *set == "" {
				// The first member: find web's set once.
				if s, err := setWith(ctx, f, "host3", w.IPv4); err == nil {
					*set = s
					break
				}
			} else if out, err = f.Exec(ctx, "host3", "nft", "list", "set", "inet", "switchd", *set); err != nil {
				tb.Fatal(err)
			} else if in.MatchString(out) {
				break
			}
			if time.Since(start) > 60*time.Second {
				tb.Fatalf("%v not in host3's table within 60 s", w.IPv4)
			}
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// cpuTimes is each node's daemon's CPU time so far (user and system,
// /proc/PID/stat): what the load costs, however busy the machine is.
func cpuTimes(tb testing.TB, f *sim.Fabric, nodes []string) map[string]time.Duration {
	tb.Helper()
	m := map[string]time.Duration{}
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", f.PID(n)))
		if err != nil {
			tb.Fatal(err)
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks (100 Hz).
		_, rest, _ := strings.Cut(string(b), ") ")
		fs := strings.Fields(rest)
		u, _ := strconv.ParseInt(fs[11], 10, 64)
		s, _ := strconv.ParseInt(fs[12], 10, 64)
		m[n] = time.Duration(u+s) * 10 * time.Millisecond
	}
	return m
}

// cpuProfiles records nodes' CPU profiles of a phase, for
// SWITCHD_BENCH_CPU_SECONDS from now, into SWITCHD_BENCH_HEAPDIR if both
// are set; the function it returns waits for them.
func cpuProfiles(tb testing.TB, f *sim.Fabric, nodes []string, phase string) func() {
	dir, secs := os.Getenv("SWITCHD_BENCH_HEAPDIR"), os.Getenv("SWITCHD_BENCH_CPU_SECONDS")
	if dir == "" || secs == "" {
		return func() {}
	}
	var cmds []*exec.Cmd
	for _, n := range nodes {
		c := exec.CommandContext(tb.Context(), "curl", "-sf", "-o", fmt.Sprintf("%s/%s-%s.cpu.pprof", dir, n, phase),
			"--unix-socket", f.Node(n).Socket, "http://switchd/debug/pprof/profile?seconds="+secs)
		if err := c.Start(); err != nil {
			tb.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	return func() {
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				tb.Logf("cpu profile: %v", err)
			}
		}
	}
}

func quantileMS(lat []time.Duration, p float64) float64 {
	s := slices.Sorted(slices.Values(lat))
	return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
}

// BenchmarkPrivilegedGroupMembershipScale measures issue 13's Build 2 on
// the default fabric: b.N web workloads' propagation (ADD on host1 to the
// address in host3's set, behind the other leaf) before and with 50,000
// membership routes in 100 groups (p50/p99 of each, side by side); the
// time from the source's first UPDATE to all 50,000 addresses in host3's
// policy sets (polled with `nft list table`, ~1 s each at that size);
// and the private resident memory (RssAnon) each of host3, leaf1 (which
// takes them from the source), leaf2 and spine1 gains per membership
// route, and the CPU time each spends on the load per route (load-s is
// wall time, which on a shared machine says more about the machine).
// SWITCHD_BENCH_MEMBERS changes the 50,000; SWITCHD_BENCH_HEAPDIR names a
// directory for those nodes' heap profiles (loaded) and, with
// SWITCHD_BENCH_CPU_SECONDS, their CPU profiles from the start of the
// load and (with host1's) of the propagation at scale.
//
//	go test -c -o /tmp/s.test ./switchd && (cd switchd && /tmp/s.test -test.run '^$' -test.bench GroupMembershipScale -test.benchtime 50x -test.timeout 30m)
func BenchmarkPrivilegedGroupMembershipScale(b *testing.B) {
	ns.Privileged(b)
	members := scaleMembers
	if v, err := strconv.Atoi(os.Getenv("SWITCHD_BENCH_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	src, err := scaleSource(members)
	if err != nil {
		b.Fatal(err)
	}
	f := membershipFabric(b, scalePolicy(), 2*b.N)
	ctx := b.Context()
	b.ResetTimer()
	var set string
	before := propagation(b, f, 0, b.N, &set)
	b.StopTimer()

	nodes := []string{"host3", "leaf1", "leaf2", "spine1"}
	rss := func() map[string]int64 {
		m := map[string]int64{}
		for _, n := range nodes {
			v, err := rssAnon(f.PID(n))
			if err != nil {
				b.Fatal(err)
			}
			m[n] = v
		}
		return m
	}
	idle := rss()
	gsrc := ns.NewT(b, "gsrc")
	addSourceNeighbor(b, f, gsrc)
	ss := openSource(b, gsrc, src)
	defer ss.Close()
	cpu0 := cpuTimes(b, f, nodes)
	profiled := cpuProfiles(b, f, nodes, "load")
	start := time.Now()
	if err := ss.Announce(); err != nil {
		b.Fatal(err)
	}
	for {
		n, err := memberCount(ctx, f, "host3")
		if err != nil {
			b.Fatal(err)
		}
		if n >= members {
			break
		}
		if err := ss.Err(); err != nil {
			b.Fatalf("membership source: %v", err)
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("%d of %d members in host3's table after 10 min", n, members)
		}
		time.Sleep(500 * time.Millisecond)
	}
	converged := time.Since(start)
	cpu1 := cpuTimes(b, f, nodes)
	profiled()
	// Let the nodes settle (GC, the other hosts' sets) before reading.
	time.Sleep(15 * time.Second)
	loaded := rss()
	if dir := os.Getenv("SWITCHD_BENCH_HEAPDIR"); dir != "" {
		for _, n := range nodes {
			out := fmt.Sprintf("%s/%s-%d.heap.pprof", dir, n, b.N)
			if err := exec.CommandContext(ctx, "curl", "-sf", "-o", out, "--unix-socket", f.Node(n).Socket, "http://switchd/debug/pprof/heap").Run(); err != nil {
				b.Logf("heap profile of %s: %v", n, err)
			}
		}
	}
	profiled = cpuProfiles(b, f, append(nodes, "host1"), "propagation")
	b.StartTimer()
	at := propagation(b, f, b.N, b.N, &set)
	b.StopTimer()
	profiled()

	b.ReportMetric(quantileMS(before, 0.5), "p50-ms")
	b.ReportMetric(quantileMS(before, 0.99), "p99-ms")
	b.ReportMetric(quantileMS(at, 0.5), "p50-at-scale-ms")
	b.ReportMetric(quantileMS(at, 0.99), "p99-at-scale-ms")
	b.ReportMetric(converged.Seconds(), "load-s")
	for _, n := range nodes {
		per := float64(loaded[n]-idle[n]) / float64(members)
		b.ReportMetric(per, n+"-B/route")
		b.ReportMetric(float64((cpu1[n]-cpu0[n]).Microseconds())/float64(members), n+"-cpu-µs/route")
		b.Logf("%s: RssAnon %d KiB idle, %d KiB with %d membership routes: %.0f B per route", n, idle[n]>>10, loaded[n]>>10, members, per)
	}
	b.Logf("%d membership routes in host3's sets %.1f s after the source's first UPDATE", members, converged.Seconds())
}

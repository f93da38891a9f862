package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// groupsPolicy declares group web (app == "web", id 10) and a policy db:
// endpoints app == "db" take tcp/5432 only from the group.
func groupsPolicy(webSel string) map[string]any {
	rule := map[string]any{"sequence-id": 10, "config": map[string]any{"sequence-id": 10, "action": "ALLOW",
		"protocol": "TCP", "destination-port": []int{sim.PolicyPort}, "peer-selector": `app == "web"`}}
	return map[string]any{"switchd:switchd": map[string]any{"workload-policy": map[string]any{
		"config": map[string]any{"default-action": "ALLOW"},
		"groups": map[string]any{"group": []any{map[string]any{"name": "web",
			"config": map[string]any{"name": "web", "id": 10, "selector": webSel}}}},
		"policies": map[string]any{"policy": []any{map[string]any{"name": "db",
			"config":        map[string]any{"name": "db", "order": 100, "selector": `app == "db"`},
			"ingress-rules": map[string]any{"ingress-rule": []any{rule}}}}},
	}}}
}

// hostRoutes is node's switchd (protocol 77) host routes, /32 and /128.
func hostRoutes(t *testing.T, f *sim.Fabric, node string) map[netip.Addr]bool {
	t.Helper()
	out := map[netip.Addr]bool{}
	for _, fam := range []string{"-4", "-6"} {
		s, err := f.Exec(t.Context(), node, "ip", "-j", fam, "route", "show", "proto", "77")
		if err != nil {
			t.Fatalf("%s: ip route: %v", node, err)
		}
		var rs []struct{ Dst string }
		if err := json.Unmarshal([]byte(s), &rs); err != nil {
			t.Fatalf("%s: ip -j route: %v: %s", node, err, s)
		}
		for _, r := range rs {
			if a, err := netip.ParseAddr(r.Dst); err == nil {
				out[a] = true
			} else if p, err := netip.ParsePrefix(r.Dst); err == nil && p.IsSingleIP() {
				out[p.Addr()] = true
			}
		}
	}
	return out
}

// TestGroupsInBGPPrivileged is issue 13's first acceptance item on the
// default fabric with no network sets (the topology declares a group, so
// the simulator's stand-in stays out): web1 (app=web) on host1 reaches db1
// on host3 (behind the other leaf) on tcp/5432, other1 on host1 does not;
// taking web1 out of the group on host1 cuts it; no switchd node's FIB
// holds a host route to a workload other than its own.
func TestGroupsInBGPPrivileged(t *testing.T) {
	ns.Privileged(t)
	topo := sim.Default()
	topo.PolicyTree = groupsPolicy(`app == "web"`)
	for i := range topo.Nodes {
		switch topo.Nodes[i].Name {
		case "host1":
			topo.Nodes[i].Workloads = map[string]map[string]string{"w1": {"app": "web"}, "w2": {"app": "other"}}
		case "host3":
			topo.Nodes[i].Workloads = map[string]map[string]string{"w1": {"app": "db"}}
		}
	}
	f := simtest.Start(t, topo)
	simWaitConverged(t, f)
	ctx := t.Context()
	web, err := f.AddWorkload(ctx, "host1", "w1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.AddWorkload(ctx, "host1", "w2")
	if err != nil {
		t.Fatal(err)
	}
	db, err := f.AddWorkload(ctx, "host3", "w1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.ListenWorkload(*db, sim.PolicyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// other1 is probed first, at every try: web1 reaching db1 does not
	// show that db1's policy is in place (before it is, an open db1 takes
	// both), so other1 must be refused from db1's first moment on.
	for _, fam := range []int{4, 6} {
		otherIn := false
		waitFor(t, 30*time.Second, fmt.Sprintf("web1 (host1) reaches db1 (host3) on tcp/%d over IPv%d", sim.PolicyPort, fam), func() error {
			otherIn = otherIn || f.ConnectWorkload(*other, *db, fam, sim.PolicyPort, time.Second) == nil
			return f.ConnectWorkload(*web, *db, fam, sim.PolicyPort, time.Second)
		})
		if otherIn || f.ConnectWorkload(*other, *db, fam, sim.PolicyPort, time.Second) == nil {
			t.Errorf("other1 (host1, not in web) reaches db1 (host3) over IPv%d", fam)
		}
	}
	unknownWorkloadClosed(t, f, *other, *db)

	// Membership routes are in no FIB: a node has host routes only to
	// its own workloads.
	own := map[string][]netip.Addr{"host1": {web.IPv4, web.IPv6, other.IPv4, other.IPv6}, "host3": {db.IPv4, db.IPv6}}
	for _, n := range f.Nodes() {
		if n.Kind != sim.Switchd {
			continue
		}
		for _, w := range []*sim.Workload{web, other, db} {
			for _, a := range []netip.Addr{w.IPv4, w.IPv6} {
				mine := false
				for _, o := range own[n.Name] {
					mine = mine || o == a
				}
				if hostRoutes(t, f, n.Name)[a] && !mine {
					t.Errorf("%s's FIB has a switchd host route to %v (%s/%s's)", n.Name, a, w.Host, w.Name)
				}
			}
		}
	}

	// The member came by BGP: host3's config has no network set.
	if b, err := os.ReadFile(f.ConfigPath("host3")); err != nil || strings.Contains(string(b), "network-set") {
		t.Errorf("host3's config has network sets (%v): the simulator's stand-in ran", err)
	}
	if out, err := f.Exec(ctx, "host3", "nft", "list", "table", "inet", "switchd"); err != nil || !strings.Contains(out, web.IPv4.String()) {
		t.Errorf("web1 (%v) is not in host3's policy table (%v)", web.IPv4, err)
	}

	// host1 takes web1 out of the group (as a relabel would): its
	// membership route goes, host3's set follows, the connection is cut.
	editConfig(t, f, "host1", func(tree map[string]any) {
		tree["switchd:switchd"].(map[string]any)["workload-policy"].(map[string]any)["groups"] =
			groupsPolicy(`app == "web" && sim-host != "host1"`)["switchd:switchd"].(map[string]any)["workload-policy"].(map[string]any)["groups"]
	})
	waitFor(t, 30*time.Second, "web1's addresses gone from host3's policy table", func() error {
		out, err := f.Exec(ctx, "host3", "nft", "list", "table", "inet", "switchd")
		if err != nil {
			return err
		}
		if strings.Contains(out, web.IPv4.String()) {
			return fmt.Errorf("%v still in host3's table", web.IPv4)
		}
		return nil
	})
	if err := f.ConnectWorkload(*web, *db, 4, sim.PolicyPort, time.Second); err == nil {
		t.Error("web1 still reaches db1 after leaving group web")
	}
}

// unknownWorkloadClosed puts on db's host a workload switchd was never
// told of: a veth with host's prefix (swc) into a namespace of the
// test's, with addresses inside db's blocks, routed to by hand. That is
// what a new workload is whose interface and route are live before
// policy has its endpoint, held still: from's connection to it must be
// dropped, by the policy table's unknown-interface rule (its counter
// moves), though host3 itself reaches it. Before switchd failed closed,
// the workload was open.
func unknownWorkloadClosed(t *testing.T, f *sim.Fabric, from, db sim.Workload) {
	ctx := t.Context()
	rogue := sim.Workload{Host: db.Host, Name: "rogue", IPv4: db.IPv4.Next().Next(), IPv6: db.IPv6.Next().Next()}
	rns := ns.NewT(t, "rogue")
	rogue.Netns = rns.Name
	hns, err := ns.Open(f.Node(db.Host).Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer hns.Close()
	const iface = "swcrogue"
	if err := ns.Veth(hns, iface, rns, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    *ns.NS
		argv string
	}{
		{hns, "ip addr add 169.254.1.1/32 dev " + iface},
		{hns, "ip addr add fe80::1/64 dev " + iface + " nodad"},
		{hns, "ip route add " + rogue.IPv4.String() + "/32 dev " + iface},
		{hns, "ip -6 route add " + rogue.IPv6.String() + "/128 dev " + iface},
		{rns, "ip addr add " + rogue.IPv4.String() + "/32 dev eth0"},
		{rns, "ip addr add " + rogue.IPv6.String() + "/128 dev eth0 nodad"},
		{rns, "ip route add 169.254.1.1 dev eth0"},
		{rns, "ip route add default via 169.254.1.1"},
		{rns, "ip -6 route add default via fe80::1 dev eth0"},
	} {
		if out, err := c.n.Run(ctx, strings.Fields(c.argv)...); err != nil {
			t.Fatalf("%s: %v: %s", c.argv, err, out)
		}
	}
	l, err := f.ListenWorkload(rogue, sim.PolicyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The workload works: its host reaches it (host traffic is no
	// workload policy's).
	waitFor(t, 10*time.Second, "host3 pings the unknown workload", func() error {
		_, err := hns.Run(ctx, "ping", "-c1", "-W1", rogue.IPv4.String())
		return err
	})
	// drops is the packet count of the unknown-interface drop toward a
	// workload; -1 if there is no such rule.
	drops := func() int {
		out, err := f.Exec(ctx, db.Host, "nft", "list", "chain", "inet", "switchd", "wl-to-if")
		n := -1
		if _, rest, ok := strings.Cut(out, "counter packets "); err == nil && ok {
			fmt.Sscan(rest, &n)
		}
		return n
	}
	before := drops()
	for _, fam := range []int{4, 6} {
		if err := f.ConnectWorkload(from, rogue, fam, sim.PolicyPort, time.Second); err == nil {
			t.Errorf("%s/%s reaches a workload policy does not know (%s on %s) over IPv%d: switchd fails open", from.Host, from.Name, iface, db.Host, fam)
		}
	}
	if after := drops(); before < 0 || after <= before {
		t.Errorf("%s's unknown-interface drop counted %d -> %d packets (-1: no such rule), want more", db.Host, before, after)
	}
}

// bgpNeighborsOf is the BGP neighbors container of a config tree, whose
// "neighbor" list an edit may change.
func bgpNeighborsOf(tree map[string]any) map[string]any {
	nis := tree["openconfig-network-instance:network-instances"].(map[string]any)["network-instance"].([]any)
	for _, pr := range nis[0].(map[string]any)["protocols"].(map[string]any)["protocol"].([]any) {
		if bgp, ok := pr.(map[string]any)["bgp"].(map[string]any); ok {
			return bgp["neighbors"].(map[string]any)
		}
	}
	return nil
}

package main

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// birdRouteFor is the network of the route BIRD (control socket ctl)
// would take to a: the longest prefix it holds covering a, or an invalid
// prefix if none.
func birdRouteFor(t *testing.T, ctl string, a netip.Addr) (netip.Prefix, error) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "birdc", "-s", ctl, "show", "route", "for", a.String()).CombinedOutput()
	if regexp.MustCompile(`Network not found`).Match(out) {
		return netip.Prefix{}, nil
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("birdc show route for %v: %v\n%s", a, err, out)
	}
	m := regexp.MustCompile(`(?m)^([0-9a-f:.]+/[0-9]+)\s`).FindSubmatch(out)
	if m == nil {
		return netip.Prefix{}, fmt.Errorf("birdc show route for %v: no network in\n%s", a, out)
	}
	return netip.ParsePrefix(string(m[1]))
}

// setMembershipRoutes sets switchd:membership-routes to v on every
// neighbor of node described as peer, and reloads the node.
func setMembershipRoutes(t *testing.T, f *sim.Fabric, node, peer, v string) {
	t.Helper()
	editConfig(t, f, node, func(tree map[string]any) {
		n := 0
		for _, nb := range bgpNeighborsOf(tree)["neighbor"].([]any) {
			if cfg := nb.(map[string]any)["config"].(map[string]any); cfg["description"] == peer {
				cfg["switchd:membership-routes"] = v
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s has no neighbor %s", node, peer)
		}
	})
}

// TestMembershipFilterToExternalPrivileged: a BIRD router outside the
// fabric (sim role external) peers with leaf1, whose generated config
// filters membership routes toward it. web1 on host1 joins group web: its
// membership route reaches host3's policy set through the fabric, while
// BIRD holds host1's workload block for web1's addresses and no host
// route. Set to send, the membership routes reach BIRD, so the check
// above can fail.
func TestMembershipFilterToExternalPrivileged(t *testing.T) {
	ns.Privileged(t)
	topo := sim.Default()
	topo.PolicyTree = groupsPolicy(`app == "web"`)
	topo.Nodes = append(topo.Nodes, sim.Node{Name: "ext1", Role: sim.External, ASN: 65200, Kind: sim.Bird})
	topo.Links = append(topo.Links, sim.Link{A: "leaf1", B: "ext1"})
	for i := range topo.Nodes {
		if topo.Nodes[i].Name == "host1" {
			topo.Nodes[i].Workloads = map[string]map[string]string{"w1": {"app": "web"}}
		}
	}
	f := simtest.Start(t, topo)
	simWaitConverged(t, f)
	ctx := t.Context()
	web, err := f.AddWorkload(ctx, "host1", "w1")
	if err != nil {
		t.Fatal(err)
	}
	// In the fabric: web1 is in host3's set, so leaf1 has passed its
	// membership routes on (to the spines, and to ext1 unless filtered).
	waitFor(t, 30*time.Second, "web1 in host3's policy table", func() error {
		out, err := f.Exec(ctx, "host3", "nft", "list", "table", "inet", "switchd")
		if err != nil {
			return err
		}
		if !regexp.MustCompile(regexp.QuoteMeta(web.IPv4.String()) + `\b`).MatchString(out) {
			return fmt.Errorf("%v not in host3's table", web.IPv4)
		}
		return nil
	})
	ctl := f.Node("ext1").Socket
	for _, a := range []netip.Addr{web.IPv4, web.IPv6} {
		var got netip.Prefix
		waitFor(t, 30*time.Second, fmt.Sprintf("ext1 (BIRD) has a route to %v", a), func() (err error) {
			if got, err = birdRouteFor(t, ctl, a); err == nil && !got.IsValid() {
				err = fmt.Errorf("no route to %v", a)
			}
			return err
		})
		if got.IsSingleIP() {
			t.Errorf("ext1 (BIRD) has the membership route %v; want only the workload block", got)
		}
	}

	setMembershipRoutes(t, f, "leaf1", "ext1", "send")
	for _, a := range []netip.Addr{web.IPv4, web.IPv6} {
		waitFor(t, 30*time.Second, fmt.Sprintf("ext1 (BIRD) has membership route %v with the filter off", a), func() error {
			got, err := birdRouteFor(t, ctl, a)
			if err == nil && got != netip.PrefixFrom(a, a.BitLen()) {
				err = fmt.Errorf("route for %v is %v", a, got)
			}
			return err
		})
	}
}

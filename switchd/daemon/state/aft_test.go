package state

import (
	"net/netip"
	"slices"
	"sort"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ytypes"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/models/oc"
)

// fakeRoutes is a RouteView over a slice (pure logic; fib's own view is
// tested against the kernel).
type fakeRoutes struct{ rs []fib.AFTRoute }

func (f *fakeRoutes) Walk(fn func([]fib.AFTRoute) error) error {
	for c := range slices.Chunk(f.rs, 2) { // chunks, as fib walks
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeRoutes) Lookup(p netip.Prefix) (fib.AFTRoute, bool) {
	var best fib.AFTRoute
	ok := false
	for _, r := range f.rs {
		if r.Prefix == p && (!ok || r.Metric < best.Metric) {
			best, ok = r, true
		}
	}
	return best, ok
}

type fakeGroups struct {
	gs  []fib.AFTGroup
	nhs []fib.AFTNextHop
}

func (f *fakeGroups) AFT() ([]fib.AFTGroup, []fib.AFTNextHop) { return f.gs, f.nhs }

func testAFT() (*AFT, *fakeRoutes, *fakeGroups, *fakePublisher) {
	rs := &fakeRoutes{rs: []fib.AFTRoute{
		{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Type: fib.Unicast, Metric: 20, Group: 7},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Type: fib.Unicast, Metric: 20, Group: 8},
		{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Type: fib.Blackhole, Metric: 1},
		// A workload's route: its interface alone, inline.
		{Prefix: netip.MustParsePrefix("10.244.1.5/32"), Type: fib.Unicast, NextHops: []fib.NextHop{{Ifindex: 4}}},
	}}
	gs := &fakeGroups{
		gs: []fib.AFTGroup{
			{ID: 7, Members: []fib.AFTMember{{NextHop: 1, Weight: 1}, {NextHop: 2, Weight: 3}}},
			{ID: 8, Members: []fib.AFTMember{{NextHop: 3, Weight: 1}}},
		},
		nhs: []fib.AFTNextHop{
			{ID: 1, Gateway: netip.MustParseAddr("10.0.0.1"), Ifindex: 3},
			{ID: 2, Gateway: netip.MustParseAddr("10.0.0.3"), Ifindex: 4},
			{ID: 3, Gateway: netip.MustParseAddr("fe80::1"), Ifindex: 3},
		},
	}
	pub := &fakePublisher{}
	names := map[int]string{3: "swp1", 4: "swp2"}
	origins := map[int]string{20: "BGP", 1: "STATIC"}
	a := NewAFT(rs, gs, pub, AFTOptions{
		Origin: func(r fib.AFTRoute) string { return origins[r.Metric] },
		Ifname: func(i int) string { return names[i] },
	})
	return a, rs, gs, pub
}

// walkAll collects the leaves a walk of query yields as path=value.
func walkAll(t *testing.T, a *AFT, query ...string) []string {
	t.Helper()
	var out []string
	err := a.Walk(query, func(n *gpb.Notification) error {
		for _, u := range n.GetUpdate() {
			out = append(out, PathString(n.GetPrefix(), u.GetPath())+"="+ValueText(u.GetVal()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// setLeaves sets n's leaves in dev through the generated schema, which
// checks each path and value, and returns how many it set.
func setLeaves(t *testing.T, dev *oc.Device, n *gpb.Notification) int {
	t.Helper()
	root := oc.LazySchemaTree()["Device"]
	for _, u := range n.GetUpdate() {
		p := &gpb.Path{Elem: append(slices.Clone(n.GetPrefix().GetElem()), u.GetPath().GetElem()...)}
		if err := ytypes.SetNode(root, dev, p, u.GetVal(), &ytypes.InitMissingElements{}); err != nil {
			t.Errorf("leaf %s: %v", PathString(nil, p), err)
		}
	}
	return len(n.GetUpdate())
}

// TestAFTJSON: every leaf a walk of the whole AFT yields sets a node of
// the generated schema (paths and types checked), the tree validates,
// and its JSON_IETF is the AFT expected: entries with their group and
// origin, groups with weighted members, next hops with gateway and
// interface.
func TestAFTJSON(t *testing.T) {
	a, _, _, _ := testAFT()
	dev := &oc.Device{}
	n := 0
	err := a.Walk(nil, func(nt *gpb.Notification) error {
		n += setLeaves(t, dev, nt)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	afts := dev.GetNetworkInstance("DEFAULT").GetAfts()
	got := rfc7951(t, afts)
	want := compact(`{
	  "openconfig-network-instance:ipv4-unicast": {"ipv4-entry": [
	    {"prefix": "10.1.0.0/24", "state": {"prefix": "10.1.0.0/24", "origin-protocol": "openconfig-policy-types:BGP", "switchd:next-hop-group": "7"}},
	    {"prefix": "10.244.1.5/32", "state": {"prefix": "10.244.1.5/32", "switchd:next-hop-group": "4294967300"}},
	    {"prefix": "10.9.0.0/16", "state": {"prefix": "10.9.0.0/16", "origin-protocol": "openconfig-policy-types:STATIC"}}]},
	  "openconfig-network-instance:ipv6-unicast": {"ipv6-entry": [
	    {"prefix": "2001:db8::/64", "state": {"prefix": "2001:db8::/64", "origin-protocol": "openconfig-policy-types:BGP", "switchd:next-hop-group": "8"}}]},
	  "openconfig-network-instance:next-hop-groups": {"next-hop-group": [
	    {"id": "4294967300", "state": {"id": "4294967300"}, "next-hops": {"next-hop": [
	      {"index": "4294967300", "state": {"index": "4294967300", "weight": "1"}}]}},
	    {"id": "7", "state": {"id": "7"}, "next-hops": {"next-hop": [
	      {"index": "1", "state": {"index": "1", "weight": "1"}},
	      {"index": "2", "state": {"index": "2", "weight": "3"}}]}},
	    {"id": "8", "state": {"id": "8"}, "next-hops": {"next-hop": [
	      {"index": "3", "state": {"index": "3", "weight": "1"}}]}}]},
	  "openconfig-network-instance:next-hops": {"next-hop": [
	    {"index": "1", "state": {"index": "1", "ip-address": "10.0.0.1"}, "interface-ref": {"state": {"interface": "swp1"}}},
	    {"index": "2", "state": {"index": "2", "ip-address": "10.0.0.3"}, "interface-ref": {"state": {"interface": "swp2"}}},
	    {"index": "3", "state": {"index": "3", "ip-address": "fe80::1"}, "interface-ref": {"state": {"interface": "swp1"}}},
	    {"index": "4294967300", "state": {"index": "4294967300"}, "interface-ref": {"state": {"interface": "swp2"}}}]}
	}`)
	if got != want {
		t.Errorf("AFT\n got %s\nwant %s", got, want)
	}
	if n == 0 {
		t.Fatal("walk yielded nothing")
	}
}

// TestAFTWalkNarrowed: a query naming a part or a key yields only that
// part or entry (the server filters too, but a Get of one prefix must not
// walk a million routes).
func TestAFTWalkNarrowed(t *testing.T) {
	a, _, _, _ := testAFT()
	base := []string{"network-instances", "network-instance", "DEFAULT", "afts"}
	q := func(s ...string) []string { return append(slices.Clone(base), s...) }
	entry := "network-instances/network-instance[name=DEFAULT]/afts/ipv4-unicast/ipv4-entry[prefix=10.1.0.0/24]"
	if got := walkAll(t, a, q("ipv4-unicast", "ipv4-entry", "10.1.0.0/24")...); !slices.Equal(got, []string{
		entry + "/state/next-hop-group=7",
		entry + "/state/origin-protocol=BGP", entry + "/state/prefix=10.1.0.0/24"}) {
		t.Errorf("one entry: %q", got)
	}
	if got := walkAll(t, a, q("ipv6-unicast", "ipv6-entry", "10.1.0.0/24")...); len(got) != 0 {
		t.Errorf("an IPv4 prefix under ipv6-unicast: %q", got)
	}
	for _, l := range walkAll(t, a, q("next-hops")...) {
		if !slices.Contains([]string{"next-hops"}, l[len("network-instances/network-instance[name=DEFAULT]/afts/"):][:9]) {
			t.Errorf("next-hops walk yielded %s", l)
		}
	}
	if got := walkAll(t, a, q("next-hop-groups", "next-hop-group", "8")...); len(got) != 3 {
		t.Errorf("group 8: %q", got)
	}
	if got := walkAll(t, a, "interfaces"); len(got) != 0 {
		t.Errorf("a query outside the AFT: %q", got)
	}
}

// TestAFTRoutes: the route feed becomes entry updates and deletes; a
// withdrawn route whose prefix another of switchd's routes still covers
// (a higher metric) becomes that route's entry, not a delete.
func TestAFTRoutes(t *testing.T) {
	a, rs, _, pub := testAFT()
	p := netip.MustParsePrefix("10.1.0.0/24")
	entry := "network-instances/network-instance[name=DEFAULT]/afts/ipv4-unicast/ipv4-entry[prefix=10.1.0.0/24]"
	// The static route at metric 1 arrives: it is the one forwarding.
	rs.rs = append(rs.rs, fib.AFTRoute{Prefix: p, Type: fib.Unicast, Metric: 1, Group: 8})
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: p, Priority: 1}}}}); err != nil {
		t.Fatal(err)
	}
	ups, dels := pub.take()
	if ups[entry+"/state/next-hop-group"] != "8" || ups[entry+"/state/origin-protocol"] != "STATIC" || len(dels) != 0 {
		t.Errorf("static over BGP: updates %v, deletes %v", ups, dels)
	}
	// It goes: the BGP route shows again.
	rs.rs = rs.rs[:len(rs.rs)-1]
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: p, Priority: 1}}, Deleted: true}}); err != nil {
		t.Fatal(err)
	}
	ups, dels = pub.take()
	if ups[entry+"/state/next-hop-group"] != "7" || len(dels) != 0 {
		t.Errorf("static gone: updates %v, deletes %v", ups, dels)
	}
	// The BGP route is withdrawn: the entry is deleted.
	rs.rs = slices.DeleteFunc(rs.rs, func(r fib.AFTRoute) bool { return r.Prefix == p })
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: p, Priority: 20}}, Deleted: true}}); err != nil {
		t.Fatal(err)
	}
	ups, dels = pub.take()
	if len(ups) != 0 || !slices.Equal(dels, []string{entry}) {
		t.Errorf("withdrawn: updates %v, deletes %v", ups, dels)
	}
}

// TestAFTGroups: group changes are published as the difference from
// what was published: new groups and next hops whole, a member gone
// deleted, a group and a next hop gone deleted, nothing for no change.
func TestAFTGroups(t *testing.T) {
	a, _, gs, pub := testAFT()
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	ups, dels := pub.take()
	g7 := "network-instances/network-instance[name=DEFAULT]/afts/next-hop-groups/next-hop-group[id=7]"
	if ups[g7+"/next-hops/next-hop[index=2]/state/weight"] != "3" || len(dels) != 0 {
		t.Errorf("first: updates %v, deletes %v", ups, dels)
	}
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	if ups, dels = pub.take(); len(ups)+len(dels) != 0 {
		t.Errorf("unchanged: updates %v, deletes %v", ups, dels)
	}
	// Next hop 2 withdrawn from group 7; group 8 and next hop 3 gone.
	gs.gs = []fib.AFTGroup{{ID: 7, Members: []fib.AFTMember{{NextHop: 1, Weight: 1}}}}
	gs.nhs = gs.nhs[:2]
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	_, dels = pub.take()
	afts := "network-instances/network-instance[name=DEFAULT]/afts/"
	want := []string{afts + "next-hop-groups/next-hop-group[id=7]/next-hops/next-hop[index=2]",
		afts + "next-hop-groups/next-hop-group[id=8]", afts + "next-hops/next-hop[index=3]"}
	if !slices.Equal(dels, want) {
		t.Errorf("deletes\n got %q\nwant %q", dels, want)
	}
}

// TestAFTInterfaceRoutes: routes to an interface alone (no kernel group)
// get a group and a next hop of the AFT's own per interface, published
// before the first such route and deleted after the last one goes.
func TestAFTInterfaceRoutes(t *testing.T) {
	a, rs, _, pub := testAFT()
	if err := a.Groups(); err != nil {
		t.Fatal(err)
	}
	pub.take()
	afts := "network-instances/network-instance[name=DEFAULT]/afts/"
	p := netip.MustParsePrefix("10.244.1.6/32")
	rs.rs = append(rs.rs, fib.AFTRoute{Prefix: p, Type: fib.Unicast, NextHops: []fib.NextHop{{Ifindex: 3}}})
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: p}}}}); err != nil {
		t.Fatal(err)
	}
	ups, _ := pub.take()
	g := afts + "next-hop-groups/next-hop-group[id=4294967299]"
	if ups[afts+"ipv4-unicast/ipv4-entry[prefix=10.244.1.6/32]/state/next-hop-group"] != "4294967299" ||
		ups[g+"/next-hops/next-hop[index=4294967299]/state/weight"] != "1" ||
		ups[afts+"next-hops/next-hop[index=4294967299]/interface-ref/state/interface"] != "swp1" {
		t.Errorf("a workload route on swp1: updates %v", ups)
	}
	rs.rs = rs.rs[:len(rs.rs)-1]
	if err := a.Routes([]fib.RouteUpdate{{Route: fib.Route{Key: fib.RouteKey{Dst: p}}, Deleted: true}}); err != nil {
		t.Fatal(err)
	}
	_, dels := pub.take()
	want := []string{afts + "ipv4-unicast/ipv4-entry[prefix=10.244.1.6/32]", g, afts + "next-hops/next-hop[index=4294967299]"}
	slices.Sort(want)
	if !slices.Equal(dels, want) {
		t.Errorf("deletes\n got %q\nwant %q", dels, want)
	}
}

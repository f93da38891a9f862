package sim

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/host/endpointapi"
)

// scaleFabric plans a generated fabric of 4 hosts in 2 racks (leaf1 and
// leaf2, leaf3 and leaf4) under 2 spines, without bringing it up.
func scaleFabric(t *testing.T) *Fabric {
	t.Helper()
	topo, err := ScaleTopology(Scale{Hosts: 4, Leaves: 4, Spines: 2})
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(topo, Options{Prefix: "swdtest", RunDir: "/tmp/x"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// via lists node's next hops towards peers, as ExpectedFIBs would for an
// IPv4 prefix.
func via(t *testing.T, f *Fabric, node string, peers ...string) FIBEntry {
	t.Helper()
	var e FIBEntry
	for _, p := range peers {
		for _, i := range f.Node(node).Interfaces {
			if i.Peer == p {
				e.Nexthops = append(e.Nexthops, Nexthop{Dev: i.Name, Gw: i.Peer4})
			}
		}
	}
	sortNexthops(e.Nexthops)
	return e
}

// TestExpectedFIBs checks the verifier's model of the fabric: hosts reach
// every other host's blocks through both leaves of their rack, leaves
// reach other racks through every spine and their own hosts directly,
// spines reach a rack through its two leaves and never each other; a host
// holds a blackhole per own block and a device route per endpoint
// address; a link that is down is no path.
func TestExpectedFIBs(t *testing.T) {
	f := scaleFabric(t)
	b1, b2, b3 := netip.MustParsePrefix("10.100.1.0/26"), netip.MustParsePrefix("10.100.2.0/26"), netip.MustParsePrefix("10.100.3.0/26")
	w := netip.MustParseAddr("10.100.1.1")
	hosts := map[string]HostState{
		"host1": {Blocks: []netip.Prefix{b1}, Endpoints: []endpointapi.Endpoint{{ID: "w1/eth0", HostIface: "swd1", IPv4: w}}},
		"host2": {Blocks: []netip.Prefix{b2}},
		"host3": {Blocks: []netip.Prefix{b3}},
	}
	fibs := f.ExpectedFIBs(hosts, nil)
	for _, c := range []struct {
		node string
		dst  netip.Prefix
		want FIBEntry
	}{
		{"host1", b3, via(t, f, "host1", "leaf1", "leaf2")},
		{"host1", b2, via(t, f, "host1", "leaf1", "leaf2")},
		{"host1", b1, FIBEntry{Blackhole: true}},
		{"host1", netip.PrefixFrom(w, 32), FIBEntry{Nexthops: []Nexthop{{Dev: "swd1"}}}},
		{"leaf1", b3, via(t, f, "leaf1", "spine1", "spine2")},
		{"leaf1", b1, via(t, f, "leaf1", "host1")},
		{"spine1", b1, via(t, f, "spine1", "leaf1", "leaf2")},
		{"spine1", netip.PrefixFrom(f.Node("host4").Loopback4, 32), via(t, f, "spine1", "leaf3", "leaf4")},
	} {
		if got := fibs[c.node][c.dst]; !got.equal(c.want) {
			t.Errorf("%s: %v %v, want %v", c.node, c.dst, got, c.want)
		}
	}
	if e, ok := fibs["spine1"][netip.PrefixFrom(f.Node("spine2").Loopback4, 32)]; ok {
		t.Errorf("spine1 has a route to spine2's loopback (%v); spines share an AS", e)
	}
	// The IPv6 next hop is the peer's global address on the link.
	if got := fibs["host1"][netip.PrefixFrom(f.Node("host3").Loopback6, 128)]; len(got.Nexthops) != 2 || !got.Nexthops[0].Gw.Is6() {
		t.Errorf("host1: route to host3's IPv6 loopback %v, want two IPv6 next hops", got)
	}

	down := map[int]bool{peerInterface(f.Node("leaf1"), f.Node("leaf1").Interfaces[0].Link).Link: true} // leaf1-spine1
	fibs = f.ExpectedFIBs(hosts, down)
	if got, want := fibs["leaf1"][b3], via(t, f, "leaf1", "spine2"); !got.equal(want) {
		t.Errorf("leaf1-spine1 down: leaf1: %v %v, want %v", b3, got, want)
	}
	if got, want := fibs["spine1"][b1], via(t, f, "spine1", "leaf2"); !got.equal(want) {
		t.Errorf("leaf1-spine1 down: spine1: %v %v, want %v", b1, got, want)
	}
	if got, want := fibs["host1"][b3], via(t, f, "host1", "leaf1", "leaf2"); !got.equal(want) {
		t.Errorf("leaf1-spine1 down: host1: %v %v, want %v (leaf1 still reaches rack 2 by spine2)", b3, got, want)
	}
}

// TestCompareFIBFailsOnWrongFIB shows the comparison catches every kind
// of wrong FIB: a next hop missing from an ECMP route, a route missing,
// one too many, a blackhole where a route should be, and a wrong gateway.
func TestCompareFIBFailsOnWrongFIB(t *testing.T) {
	f := scaleFabric(t)
	b3 := netip.MustParsePrefix("10.100.3.0/26")
	hosts := map[string]HostState{"host1": {Blocks: []netip.Prefix{netip.MustParsePrefix("10.100.1.0/26")}}, "host3": {Blocks: []netip.Prefix{b3}}}
	want := f.ExpectedFIBs(hosts, nil)["host1"]
	if d := CompareFIB(want, maps.Clone(want)); len(d) != 0 {
		t.Fatalf("an exact FIB differs: %v", d)
	}
	lo3 := netip.PrefixFrom(f.Node("host3").Loopback4, 32)
	for name, wrong := range map[string]func(FIB){
		"one ECMP next hop": func(g FIB) { e := g[b3]; e.Nexthops = e.Nexthops[:1]; g[b3] = e },
		"route missing":     func(g FIB) { delete(g, lo3) },
		"extra route":       func(g FIB) { g[netip.MustParsePrefix("10.100.9.0/26")] = g[b3] },
		"blackhole":         func(g FIB) { g[b3] = FIBEntry{Blackhole: true} },
		"wrong gateway": func(g FIB) {
			e := g[b3]
			e.Nexthops = slices.Clone(e.Nexthops)
			e.Nexthops[0].Gw = e.Nexthops[0].Gw.Next()
			g[b3] = e
		},
	} {
		got := maps.Clone(want)
		wrong(got)
		d := CompareFIB(want, got)
		if len(d) != 1 {
			t.Errorf("%s: %d differences %v, want 1", name, len(d), d)
			continue
		}
		if !strings.Contains(d[0], "10.100.") && !strings.Contains(d[0], lo3.String()) {
			t.Errorf("%s: %q does not name the prefix", name, d[0])
		}
	}
}

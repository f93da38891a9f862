package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bgp"
)

// BGP unnumbered in OpenConfig terms. OpenConfig has no interface leaf on
// a neighbor, and its neighbor-address (the list key) is an ip-address
// without zone; but transport/config/local-address may name an interface
// ("either an IP address or reference to the name of an interface"). So
// a neighbor whose neighbor-address is an IPv6 link-local address and
// whose local-address names an interface is an unnumbered neighbor on
// that interface (bgp.Neighbor.Interface): the session runs between the
// link-local addresses and carries IPv4 routes with IPv6 next hops.

// localInterface takes local-address value v, which is not an IP address,
// at path lp, as the interface of an unnumbered neighbor.
func (t *translator) localInterface(nb *bgp.Neighbor, v string, lp path) {
	a := nb.Address
	if !a.Is6() || !a.IsLinkLocalUnicast() {
		t.add(lp, fmt.Sprintf("local-address %q is not an IP address; an interface name is taken only for an unnumbered neighbor, whose neighbor-address is an IPv6 link-local address", v))
		return
	}
	nb.Interface = v
	t.leafOf(a, bgp.FieldLocalAddress, lp)
}

// neighborPaths locates the neighbor a speaker error names: the speaker
// reports an unnumbered neighbor with its interface as zone.
func (t *translator) neighborPaths(a netip.Addr) *neighborPaths {
	if np := t.neighbors[a]; np != nil {
		return np
	}
	return t.neighbors[a.WithZone("")]
}

// interfaceNeighbors translates bgp/interface-neighbors (switchd's YANG):
// neighbors given by interface alone, whose peer's link-local address the
// speaker discovers; everything else comes from their peer group, as for
// FRR's `neighbor IF interface peer-group G`. Each is translated as a
// neighbor keyed fe80::%IF, the speaker's name for it until discovered.
func (t *translator) interfaceNeighbors(b *oc.NetworkInstance_Protocol_Bgp, p path, enabled map[bgp.Family]bool, c *bgp.Config) {
	for _, name := range slices.Sorted(maps.Keys(b.InterfaceNeighbor)) {
		in := b.InterfaceNeighbor[name]
		np := p.child("interface-neighbors").entry("interface-neighbor", []kv{{"interface", name}})
		ifp := np.child("config").child("interface")
		if r := badIfName(name); r != "" {
			t.add(ifp, fmt.Sprintf("interface %q: %s", name, r))
			continue
		}
		addr := "fe80::%" + name
		n := &oc.NetworkInstance_Protocol_Bgp_Neighbor{NeighborAddress: &addr, PeerGroup: in.PeerGroup,
			PeerAs: in.PeerAs, Enabled: in.Enabled, Description: in.Description}
		nb, ok := t.neighbor(n, b, np, enabled, c)
		if !ok {
			continue
		}
		nb.Interface = name
		a := nb.Address
		t.leafOf(a, bgp.FieldLocalAddress, ifp)
		t.leafOf(a, "neighbor-address", ifp)
		unnumberedFamilies(&nb, enabled)
		c.Neighbors = append(c.Neighbors, nb)
	}
}

// unnumberedFamilies gives an unnumbered neighbor without configured
// families the unicast families BGP has enabled (both, usually): its
// session carries both.
func unnumberedFamilies(nb *bgp.Neighbor, enabled map[bgp.Family]bool) {
	if nb.Interface == "" || len(nb.Families) > 0 {
		return
	}
	for _, f := range []bgp.Family{bgp.IPv4Unicast, bgp.IPv6Unicast} {
		if enabled[f] {
			nb.Families = append(nb.Families, f)
		}
	}
}

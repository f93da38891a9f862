package sim

import (
	"net/netip"
)

// The unnumbered variant (Topology.Unnumbered, `switchd sim up
// --unnumbered`): spine–leaf links between switchd nodes carry no IPv4
// and no global IPv6 address, only the kernel's IPv6 link-local ones. Each
// end names its neighbor by interface (switchd's bgp/interface-neighbors):
// switchd discovers the peer's link-local address and runs one session
// over it for both families, IPv4 routes with IPv6 next hops (RFC 8950).
// The plan keeps the links' /31 and /127 (Interface.Addr4 and so on) so
// that numbering does not shift between the variants; they are simply not
// configured. Host links stay numbered: a host is a server whose uplink
// address is its own business.

// unnumberedLink reports whether the link between a and b is unnumbered
// in topology t.
func unnumberedLink(t *Topology, a, b *NodeInfo) bool {
	fabric := func(n *NodeInfo) bool { return (n.Role == Spine || n.Role == Leaf) && n.Kind == Switchd }
	return t.Unnumbered && fabric(a) && fabric(b)
}

// unnumberedSession is how status names an unnumbered interface's one
// session: fe80:: with the interface as zone, switchd's name for a
// neighbor to be discovered; the daemon reports the discovered address
// with that zone (sessionKey).
func unnumberedSession(i *Interface) netip.Addr {
	return netip.MustParseAddr("fe80::").WithZone(i.Name)
}

// sessionKey is the address status looks a neighbor's state up by: an
// unnumbered neighbor's (zoned) address becomes unnumberedSession's form.
func sessionKey(a netip.Addr) netip.Addr {
	if a.Zone() != "" && a.Is6() && a.IsLinkLocalUnicast() {
		return netip.MustParseAddr("fe80::").WithZone(a.Zone())
	}
	return a
}

// interfaceNeighbor is the config of an unnumbered interface's neighbor:
// a peer group of its own with the settings a numbered neighbor would
// have (peer AS, timers, passive mode, policies, both families), and the
// interface neighbor that uses it.
func interfaceNeighbor(i *Interface, tm *Timers, passive bool, applyPolicy obj) (group, neighbor obj) {
	name := "unnumbered-" + i.Name
	group = obj{
		"peer-group-name": name,
		"config":          obj{"peer-group-name": name, "peer-as": i.PeerASN, "description": i.Peer},
		"timers": obj{"config": obj{
			"hold-time":          tm.Hold,
			"keepalive-interval": tm.Keepalive,
			"connect-retry":      tm.ConnectRetry,
		}},
		"afi-safis":    obj{"afi-safi": []any{afiSafi(idIPv4Unicast), afiSafi(idIPv6Unicast)}},
		"apply-policy": applyPolicy,
	}
	if passive {
		group["transport"] = obj{"config": obj{"passive-mode": true}}
	}
	neighbor = obj{"interface": i.Name, "config": obj{"interface": i.Name, "peer-group": name, "description": i.Peer}}
	return group, neighbor
}

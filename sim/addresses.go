package sim

import (
	"fmt"
	"net/netip"
)

// InterfaceAddrs are the addresses one interface of a node carries.
type InterfaceAddrs struct {
	Name  string
	Addrs []netip.Prefix
}

// Addresses is the one place that says which addresses a node's
// interfaces carry: its loopbacks on lo, and on each link end the /31 and
// the /127 of the address plan. A switchd node gets them through its
// config (/interfaces, applied by switchd: interfacesTree); the simulator
// assigns them itself only on nodes that do not run switchd (BIRD:
// assignAddresses). A fabric variant that leaves links without addresses
// changes this function and nothing else.
func (f *Fabric) Addresses(n *NodeInfo) []InterfaceAddrs {
	out := []InterfaceAddrs{{Name: "lo", Addrs: []netip.Prefix{netip.PrefixFrom(n.Loopback4, 32), netip.PrefixFrom(n.Loopback6, 128)}}}
	for _, i := range n.Interfaces {
		addrs := []netip.Prefix{i.Addr4, i.Addr6}
		if i.Unnumbered {
			addrs = nil // link-local only (unnumbered.go)
		}
		out = append(out, InterfaceAddrs{Name: i.Name, Addrs: addrs})
	}
	return out
}

// interfacesTree is /interfaces of a switchd node's config: each
// interface of Addresses with its addresses on subinterface 0. Nothing
// else is set: the simulator creates the veths up, and a failover test
// that sets one down must find it down.
func (f *Fabric) interfacesTree(n *NodeInfo) obj {
	var list []any
	for _, ia := range f.Addresses(n) {
		var v4, v6 []any
		for _, p := range ia.Addrs {
			a := obj{"ip": p.Addr().String(), "config": obj{"ip": p.Addr().String(), "prefix-length": p.Bits()}}
			if p.Addr().Is4() {
				v4 = append(v4, a)
			} else {
				v6 = append(v6, a)
			}
		}
		sub := obj{"index": 0, "config": obj{"index": 0}}
		if len(v4) > 0 {
			sub["openconfig-if-ip:ipv4"] = obj{"addresses": obj{"address": v4}}
		}
		if len(v6) > 0 {
			sub["openconfig-if-ip:ipv6"] = obj{"addresses": obj{"address": v6}}
		}
		e := obj{"name": ia.Name, "config": obj{"name": ia.Name}}
		if len(v4)+len(v6) > 0 {
			e["subinterfaces"] = obj{"subinterface": []any{sub}}
		}
		list = append(list, e)
	}
	return obj{"interface": list}
}

// assignAddresses gives a node that does not run switchd the addresses
// of Addresses (a switchd node applies them from its config).
func (f *Fabric) assignAddresses(n *NodeInfo) error {
	h := f.Namespace(n.Name)
	if h == nil {
		return fmt.Errorf("node %s: no namespace", n.Name)
	}
	for _, ia := range f.Addresses(n) {
		for _, p := range ia.Addrs {
			if err := h.AddAddr(ia.Name, p); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
		}
	}
	return nil
}

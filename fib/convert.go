package fib

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// toNetlink renders a normalized route as the netlink request that installs
// it, marked with protocol.
func toNetlink(r Route, protocol int) *netlink.Route {
	nr := &netlink.Route{
		Dst:      prefixToIPNet(r.Key.Dst),
		Table:    r.Key.Table,
		Tos:      int(r.Key.TOS),
		Priority: r.Key.Priority,
		Protocol: netlink.RouteProtocol(protocol),
		Type:     int(r.Type),
	}
	if r.Type != Unicast {
		return nr
	}
	v4 := r.Key.Dst.Addr().Is4()
	if len(r.NextHops) == 1 {
		nh := r.NextHops[0]
		nr.LinkIndex = nh.Ifindex
		switch {
		case !nh.Gateway.IsValid():
			// A directly connected route: iproute2 gives these link scope too.
			nr.Scope = netlink.SCOPE_LINK
		case nh.Gateway.Is4() == v4:
			nr.Gw = nh.Gateway.AsSlice()
		default:
			nr.Via = via(nh.Gateway)
		}
		return nr
	}
	for _, nh := range r.NextHops {
		info := &netlink.NexthopInfo{LinkIndex: nh.Ifindex, Hops: nh.Weight - 1}
		switch {
		case !nh.Gateway.IsValid():
		case nh.Gateway.Is4() == v4:
			info.Gw = nh.Gateway.AsSlice()
		default:
			info.Via = via(nh.Gateway)
		}
		nr.MultiPath = append(nr.MultiPath, info)
	}
	return nr
}

// deleteRequest is the netlink request that deletes the route at k, and only
// if it carries protocol: the kernel matches rtm_protocol on delete, so even
// a stale kernel view cannot make it remove a foreign route.
func deleteRequest(k RouteKey, protocol int) *netlink.Route {
	return &netlink.Route{
		Dst:      prefixToIPNet(k.Dst),
		Table:    k.Table,
		Tos:      int(k.TOS),
		Priority: k.Priority,
		Protocol: netlink.RouteProtocol(protocol),
		// RT_SCOPE_NOWHERE matches any scope; the key and protocol decide.
		Scope: netlink.SCOPE_NOWHERE,
	}
}

func via(a netip.Addr) *netlink.Via {
	f := netlink.FAMILY_V4
	if a.Is6() {
		f = netlink.FAMILY_V6
	}
	return &netlink.Via{AddrFamily: f, Addr: a.AsSlice()}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

// fromNetlink converts a route read from the kernel to a normalized Route.
// Attributes switchd does not program (preferred source, metrics, encap)
// are not represented.
func fromNetlink(nr netlink.Route) (Route, error) {
	if nr.Dst == nil {
		return Route{}, fmt.Errorf("kernel route without destination: %v", nr)
	}
	addr, ok := netip.AddrFromSlice(nr.Dst.IP)
	if !ok {
		return Route{}, fmt.Errorf("kernel route with bad destination %v", nr.Dst)
	}
	if nr.Family == unix.AF_INET || len(nr.Dst.IP) == net.IPv4len {
		addr = addr.Unmap()
	}
	ones, _ := nr.Dst.Mask.Size()
	r := Route{
		Key: RouteKey{
			Table:    nr.Table,
			Dst:      netip.PrefixFrom(addr, ones),
			TOS:      uint8(nr.Tos),
			Priority: nr.Priority,
		},
		Type: RouteType(nr.Type),
	}
	if r.Type == Unicast {
		if len(nr.MultiPath) > 0 {
			for _, info := range nr.MultiPath {
				r.NextHops = append(r.NextHops, NextHop{
					Gateway: gateway(info.Gw, info.Via),
					Ifindex: info.LinkIndex,
					Weight:  info.Hops + 1,
				})
			}
		} else {
			r.NextHops = []NextHop{{Gateway: gateway(nr.Gw, nr.Via), Ifindex: nr.LinkIndex, Weight: 1}}
		}
	}
	// Blackhole and unreachable routes come back bound to lo (IPv6); they
	// have no next hops to speak of.
	r.Normalize()
	return r, nil
}

// gateway returns the next hop address from RTA_GATEWAY or RTA_VIA.
func gateway(gw net.IP, d netlink.Destination) netip.Addr {
	if len(gw) > 0 {
		a, _ := netip.AddrFromSlice(gw)
		if len(gw) == net.IPv4len {
			a = a.Unmap()
		}
		return a
	}
	if v, ok := d.(*netlink.Via); ok && v != nil {
		a, _ := netip.AddrFromSlice(v.Addr)
		if v.AddrFamily == netlink.FAMILY_V4 {
			a = a.Unmap()
		}
		return a
	}
	return netip.Addr{}
}

// mergeSiblings folds routes with the same key into one multipath route.
// Kernels before 4.11 dumped each path of an IPv6 ECMP route as a separate
// route; this one (6.x) sends one RTA_MULTIPATH message, which passes
// through unchanged.
func mergeSiblings(rs []Route) []Route {
	idx := make(map[RouteKey]int, len(rs))
	out := rs[:0]
	for _, r := range rs {
		i, ok := idx[r.Key]
		if !ok || r.Type != Unicast || out[i].Type != Unicast {
			idx[r.Key] = len(out)
			out = append(out, r)
			continue
		}
		m := out[i]
		m.NextHops = append(append([]NextHop(nil), m.NextHops...), r.NextHops...)
		m.Normalize()
		out[i] = m
	}
	return out
}

// sameRoute reports whether the kernel's route have programs what want
// asks for. A desired next hop without an interface lets the kernel choose
// one, so it matches the interface the kernel reports.
func sameRoute(want, have Route) bool {
	return want.Key == have.Key && sameState(stateOf(want), stateOf(have))
}

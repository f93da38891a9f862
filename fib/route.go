// Package fib owns every route switchd puts into the kernel. It holds the
// desired routes, compares them with what the kernel reports and converges
// the kernel to them. It knows nothing about BGP: callers hand it whole
// routes (all ECMP next hops at once).
package fib

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Protocol is the rtnetlink route protocol (rtm_protocol) that marks a route
// as switchd's. It is how a restarted switchd finds its own routes and why it
// never touches anyone else's. 77 is in no iproute2 or FRR rt_protos table
// (FRR takes 186-198, and names 196 "static"; BIRD is 12, Calico's felix 80);
// `make demo` names it "switchd" in /etc/iproute2/rt_protos.d.
const Protocol = 77

// MainTable is the kernel's main routing table (RT_TABLE_MAIN).
const MainTable = 254

// RouteKey identifies a route the way the kernel does, so two desired routes
// can never alias one kernel route.
type RouteKey struct {
	Table    int
	Dst      netip.Prefix
	TOS      uint8
	Priority int // the route metric
}

func (k RouteKey) String() string {
	s := k.Dst.String()
	if k.Table != MainTable && k.Table != 0 {
		s += fmt.Sprintf(" table %d", k.Table)
	}
	if k.TOS != 0 {
		s += fmt.Sprintf(" tos %d", k.TOS)
	}
	if k.Priority != 0 {
		s += fmt.Sprintf(" metric %d", k.Priority)
	}
	return s
}

// RouteType is the kernel route type (rtm_type) of a route.
type RouteType uint8

const (
	Unicast     RouteType = 1 // RTN_UNICAST
	Blackhole   RouteType = 6 // RTN_BLACKHOLE
	Unreachable RouteType = 7 // RTN_UNREACHABLE
)

// NextHop is one path of a route. Gateway may be of the other address family
// than the route (RFC 8950). Ifindex 0 lets the kernel resolve the interface.
type NextHop struct {
	Gateway netip.Addr
	Ifindex int
	Weight  int // 1..256; 0 means 1
}

func (n NextHop) String() string {
	var s string
	switch {
	case n.Gateway.IsValid() && n.Ifindex != 0:
		s = fmt.Sprintf("via %v if %d", n.Gateway, n.Ifindex)
	case n.Gateway.IsValid():
		s = "via " + n.Gateway.String()
	default:
		s = fmt.Sprintf("if %d", n.Ifindex) // directly connected (dev route)
	}
	if n.Weight > 1 {
		s += fmt.Sprintf(" weight %d", n.Weight)
	}
	return s
}

// Route is one desired kernel route with all of its next hops.
type Route struct {
	Key      RouteKey
	Type     RouteType // 0 means Unicast
	NextHops []NextHop // sorted by Normalize; empty for blackhole/unreachable

	// Set only on routes read from the kernel: the hardware state and the
	// nexthop group the route uses (0: next hops inline). Equal ignores them.
	offload Offload
	nhg     uint32
	// set is the interned next-hop set of a desired route (Table.intern).
	set uint32
	// regroup marks a kernel route whose group is of the wrong kind
	// (WithResilientGroups changed): it differs from any desired route.
	regroup bool
}

// Normalize fills defaults and sorts next hops, so that equal routes compare
// equal whatever order their paths arrived in. It also brings the route to
// the form the kernel reports it in (see RouteKey.normalized), so a desired
// route and the same route read back from a dump compare equal.
func (r *Route) Normalize() {
	if r.Type == 0 {
		r.Type = Unicast
	}
	r.Key = r.Key.normalized()
	r.normalizeNextHops()
}

func (r *Route) normalizeNextHops() {
	for i := range r.NextHops {
		if r.NextHops[i].Weight == 0 {
			r.NextHops[i].Weight = 1
		}
	}
	slices.SortFunc(r.NextHops, compareNextHop)
	r.NextHops = slices.Compact(r.NextHops)
	// The kernel keeps no weight for a route with one path (it is only
	// carried in RTA_MULTIPATH), so a weight there could never compare equal.
	if len(r.NextHops) == 1 {
		r.NextHops[0].Weight = 1
	}
}

// ipv6DefaultMetric is the metric the kernel gives an IPv6 route that was
// added without one (IP6_RT_PRIO_USER); IPv4 keeps 0.
const ipv6DefaultMetric = 1024

// normalized returns the key as the kernel reports it: main table for 0,
// masked prefix, and the kernel's IPv6 default metric for 0.
func (k RouteKey) normalized() RouteKey {
	if k.Table == 0 {
		k.Table = MainTable
	}
	k.Dst = k.Dst.Masked()
	if k.Dst.Addr().Is6() && k.Priority == 0 {
		k.Priority = ipv6DefaultMetric
	}
	return k
}

func compareNextHop(a, b NextHop) int {
	if c := a.Gateway.Compare(b.Gateway); c != 0 {
		return c
	}
	if a.Ifindex != b.Ifindex {
		return a.Ifindex - b.Ifindex
	}
	return a.Weight - b.Weight
}

// Equal reports whether two normalized routes program the same kernel state.
func (r Route) Equal(o Route) bool {
	return r.Key == o.Key && r.Type == o.Type && slices.Equal(r.NextHops, o.NextHops)
}

func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Key.String())
	switch r.Type {
	case Blackhole:
		b.WriteString(" blackhole")
	case Unreachable:
		b.WriteString(" unreachable")
	}
	for _, nh := range r.NextHops {
		b.WriteString(" ")
		b.WriteString(nh.String())
	}
	return b.String()
}

package daemon

import (
	"net"
	"net/netip"

	"github.com/switchd/switchd/fib"
)

// A BGP next hop learned over an unnumbered session is the peer's IPv6
// link-local address with the session's interface as zone (switchd/bgp
// unnumbered.go), for IPv4 routes too (RFC 8950): the kernel route is
// "via inet6 fe80::x dev IF", which fib writes from a gateway without
// zone and the interface's index.

// ifindexes resolves interface names for one take: looked up once per
// take, so a batch of routes over one interface costs one lookup, and a
// link recreated under the same name is seen by the next take.
type ifindexes struct {
	m      map[string]int
	lookup func(name string) (int, error)
}

func newIfindexes() ifindexes {
	return ifindexes{m: make(map[string]int), lookup: func(name string) (int, error) {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return 0, err
		}
		return ifi.Index, nil
	}}
}

// nextHop is fib's next hop for BGP next hop a. An interface that cannot
// be found leaves Ifindex 0, which fib refuses for a link-local gateway:
// the route is logged and counted as not programmable.
func (x *ifindexes) nextHop(a netip.Addr) fib.NextHop {
	zone := a.Zone()
	if zone == "" {
		return fib.NextHop{Gateway: a, Weight: 1}
	}
	idx, ok := x.m[zone]
	if !ok {
		idx, _ = x.lookup(zone)
		x.m[zone] = idx
	}
	return fib.NextHop{Gateway: a.WithZone(""), Ifindex: idx, Weight: 1}
}

// reset forgets the lookups of the previous take.
func (x *ifindexes) reset() { clear(x.m) }

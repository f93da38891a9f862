package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// Gateway interfaces. A nexthop object needs its interface (NHA_OIF), so
// a gateway given without one is looked up as `ip route get` does: one
// RTM_GETROUTE round trip. A lookup that succeeded is cached in the
// manager (gwCache) until something may have changed the answer: a route
// change switchd did not make (the Kernel's Monitor counts them in
// routeGen), a dump (resync), or a write that failed over the gateway. A
// failed lookup is remembered for one write only (resolver), so a
// gateway that becomes reachable is found by the next retry.
//
// Without a Monitor on the Kernel a cached answer lives until the next
// resync or failed write: a gateway that moves to another link while its
// old one stays up is followed late.

// gwCache holds the interfaces of gateways the kernel resolved.
type gwCache struct {
	gen     uint64 // routeGen when ifs was last valid
	ifs     map[netip.Addr]int
	lookups uint64 // round trips sent (tests, benchmarks)
}

// forget drops every cached answer (after a dump, or a stale view).
func (c *gwCache) forget() { clear(c.ifs) }

// resolver resolves gateways for one write: through the manager's cache,
// else a lookup; failures are remembered until the write is done.
type resolver struct {
	m      *nhManager
	failed map[netip.Addr]error
}

func (r *resolver) ifindex(gw netip.Addr) (int, error) {
	m := r.m
	c := &m.gws
	if m.routeGen != nil {
		if g := m.routeGen.Load(); g != c.gen {
			c.forget()
			c.gen = g
		}
	}
	if ifindex, ok := c.ifs[gw]; ok {
		return ifindex, nil
	}
	if err, ok := r.failed[gw]; ok {
		return 0, err
	}
	c.lookups++
	ifindex, err := lookupGateway(m.c, gw)
	if err != nil {
		if r.failed == nil {
			r.failed = make(map[netip.Addr]error)
		}
		r.failed[gw] = err
		return 0, err
	}
	if c.ifs == nil {
		c.ifs = make(map[netip.Addr]int)
	}
	c.ifs[gw] = ifindex
	return ifindex, nil
}

// lookupGateway asks the kernel for the route to gw, as `ip route get`
// does, and returns its interface if gw is on it.
func lookupGateway(c *pnl.Conn, gw netip.Addr) (int, error) {
	var b pnl.Batch
	appendRouteGet(&b, gw)
	var kr kroute
	var rerr error
	got := false
	err := c.Exec(&b, func(_ int, reply netlink.Message, err error) {
		if err != nil {
			rerr = err
			return
		}
		data := reply.Data
		if len(data) >= rtmsgLen {
			// A lookup answer is marked cloned; it is no cache entry here.
			f := binary.NativeEndian.Uint32(data[8:]) &^ unix.RTM_F_CLONED
			binary.NativeEndian.PutUint32(data[8:], f)
		}
		var d routeDecoder
		kr, got = d.decode(data)
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case !got:
		return 0, errors.New("no answer")
	}
	if kr.route.Type != Unicast || len(kr.route.NextHops) != 1 {
		return 0, fmt.Errorf("%w (route type %d)", unix.ENETUNREACH, kr.route.Type)
	}
	nh := kr.route.NextHops[0]
	if nh.Gateway.IsValid() && nh.Gateway != gw {
		return 0, fmt.Errorf("not directly connected (reached via %v)", nh.Gateway)
	}
	return nh.Ifindex, nil
}

// resolveTarget fills in the interfaces of next hops that have none.
func (m *nhManager) resolveTarget(res *resolver, fam uint8, nhs []NextHop) *target {
	t := &target{fam: fam, members: slices.Clone(nhs)}
	for i, nh := range t.members {
		if nh.Ifindex != 0 {
			continue
		}
		ifindex, err := res.ifindex(nh.Gateway)
		if err != nil {
			t.err = fmt.Errorf("resolve next hop %v: %w", nh.Gateway, err)
			return t
		}
		t.members[i].Ifindex = ifindex
	}
	r := Route{NextHops: t.members}
	r.normalizeNextHops()
	t.members = r.NextHops
	t.set = setKey(groupFamily(fam, t.members), t.members)
	return t
}

// groupFamily is the family a group's key is stored under: that of its
// members' gateways (what a dump can tell), or the route's for a group of
// directly connected next hops.
func groupFamily(routeFam uint8, members []NextHop) uint8 {
	for _, nh := range members {
		if nh.Gateway.IsValid() {
			return family(nh.Gateway)
		}
	}
	return routeFam
}

func nhFamily(routeFam uint8, nh NextHop) uint8 {
	if nh.Gateway.IsValid() {
		return family(nh.Gateway)
	}
	return routeFam
}

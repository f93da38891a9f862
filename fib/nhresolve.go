package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

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
	ifindex, err := (&rawResolver{c: m.c}).lookup(gw)
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

// rawResolver asks the kernel.
type rawResolver struct{ c *rtnl }

func (r *rawResolver) lookup(gw netip.Addr) (int, error) {
	var b msgBuf
	seq := r.c.nextSeq(1)
	b.begin(unix.RTM_GETROUTE, 0, seq)
	b.raw(family(gw), uint8(gw.BitLen()), 0, 0, 0, 0, 0, 0)
	b.u32(0)
	b.attr(unix.RTA_DST, gw.AsSlice())
	b.end()
	if err := unix.Sendto(r.c.fd, b.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	var kr kroute
	var rerr error
	got := false
	for !got {
		err := r.c.recv(func(h unix.NlMsghdr, data []byte) bool {
			if h.Seq != seq {
				return true
			}
			got = true
			if h.Type == unix.NLMSG_ERROR {
				rerr = parseError(h, data)
				if rerr == nil {
					rerr = errors.New("no answer")
				}
				return false
			}
			var d routeDecoder
			if len(data) >= rtmsgLen {
				// A lookup answer is marked cloned; it is no cache entry here.
				f := binary.NativeEndian.Uint32(data[8:]) &^ unix.RTM_F_CLONED
				binary.NativeEndian.PutUint32(data[8:], f)
			}
			kr, _ = d.decode(data)
			return false
		})
		if err != nil {
			return 0, err
		}
	}
	if rerr != nil {
		return 0, rerr
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

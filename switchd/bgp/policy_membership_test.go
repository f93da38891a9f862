package bgp

import (
	"net/netip"
	"testing"

	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedFilterMembership: a leaf between a switchd host, a peer
// outside the fabric (FilterMembership) and a fabric peer (control). The
// outside peer gets the host's block but not its membership route, and
// the membership route it sends itself (an attempt to join group 10) is
// refused; the control peer gets the host's membership route. Turning the
// filter off lets both through, so the checks can fail.
func TestPrivilegedFilterMembership(t *testing.T) {
	ns.Privileged(t)
	ext := peer("127.0.0.3", "127.0.0.1", 65003)
	ext.FilterMembership = true
	leaf := Config{ASN: 65001, RouterID: ip("10.0.0.1"), ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002), ext, peer("127.0.0.4", "127.0.0.1", 65004)}}
	node := func(n byte, as uint32, orig ...netip.Prefix) Config {
		a := netip.AddrFrom4([4]byte{127, 0, 0, n})
		return Config{ASN: as, RouterID: netip.AddrFrom4([4]byte{10, 0, 0, n}), ListenAddresses: []netip.Addr{a},
			Neighbors: []Neighbor{peer("127.0.0.1", a.String(), 65001)}, Originate: orig}
	}
	hostBlock, hostMember, hostLate := pfx("10.70.0.0/26"), pfx("10.70.0.5/32"), pfx("10.70.0.64/26")
	extBlock, extMember, extLate := pfx("10.80.0.0/26"), pfx("10.80.0.5/32"), pfx("10.80.0.64/26")
	hostCfg, extCfg := node(2, 65002, hostBlock), node(3, 65003, extBlock)
	sp := speakers(t, leaf, hostCfg, extCfg, node(4, 65004))
	l, host, outside, control := sp[0], sp[1], sp[2], sp[3]
	rl, rext, rctl := newRIB(l), newRIB(outside), newRIB(control)
	via := ip("127.0.0.1")
	rext.waitRoute(t, hostBlock, via)
	rl.waitRoute(t, extBlock, ip("127.0.0.3"))

	for _, m := range []struct {
		s *Speaker
		p netip.Prefix
	}{{host, hostMember}, {outside, extMember}} {
		if err := m.s.SetMembership(t.Context(), map[netip.Prefix][]uint32{m.p: {10}}); err != nil {
			t.Fatal(err)
		}
	}
	rctl.waitMembership(t, hostMember, []uint32{10})
	// A block originated after the membership routes travels behind
	// them on the same session: once it is in, so would they be.
	hostCfg.Originate = append(hostCfg.Originate, hostLate)
	extCfg.Originate = append(extCfg.Originate, extLate)
	for _, c := range []struct {
		s *Speaker
		c Config
	}{{host, hostCfg}, {outside, extCfg}} {
		if err := c.s.Apply(t.Context(), c.c); err != nil {
			t.Fatal(err)
		}
	}
	rext.waitRoute(t, hostLate, via)
	rl.waitRoute(t, extLate, ip("127.0.0.3"))
	if nh := rext.routes[hostMember]; nh != nil {
		t.Errorf("the outside peer got the host's membership route %v (via %v)", hostMember, nh)
	}
	if nh := rl.routes[extMember]; nh != nil {
		t.Errorf("the leaf took the outside peer's membership route %v (via %v)", extMember, nh)
	}

	// Without the filter both go through (soft reset, no new session).
	leaf.Neighbors[1].FilterMembership = false
	if err := l.Apply(t.Context(), leaf); err != nil {
		t.Fatal(err)
	}
	rext.waitMembership(t, hostMember, []uint32{10})
	rl.waitMembership(t, extMember, []uint32{10})
}

package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

func TestSetMembershipRefusesBadInput(t *testing.T) {
	s := New()
	defer s.Stop()
	ok := map[netip.Prefix][]uint32{pfx("10.70.0.5/32"): {10}}
	if err := s.SetMembership(t.Context(), ok); err != nil {
		t.Fatalf("SetMembership before the first Apply: %v, want it recorded", err)
	}
	err := s.SetMembership(t.Context(), map[netip.Prefix][]uint32{pfx("10.70.0.0/26"): {10}, pfx("10.70.0.6/32"): {0, 3}})
	for _, want := range []string{"10.70.0.0/26: not a host prefix", "10.70.0.6/32: group id 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SetMembership with bad input: err = %v, want one containing %q", err, want)
		}
	}
	if got := s.memb.want; len(got) != 1 || !slices.Equal(got[pfx("10.70.0.5/32")], []uint32{10}) {
		t.Errorf("a refused SetMembership changed the membership: %v", got)
	}
}

// waitMembership waits until r's latest route for p is a membership
// route naming ids (nil: until p is withdrawn) and returns it.
func (r *rib) waitMembership(t *testing.T, p netip.Prefix, ids []uint32) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		var last *Route
		for i := range r.seen {
			if r.seen[i].Prefix == p {
				last = &r.seen[i]
			}
		}
		if last != nil {
			got, ok := last.Membership()
			if ids == nil && len(last.NextHops) == 0 || ids != nil && ok && slices.Equal(got, ids) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("membership of %v: last route %+v, want groups %v", p, last, ids)
		}
		r.drainOnce(time.Second)
	}
}

// Membership routes travel as ordinary routes with the marker and one
// large community per group; a change of groups replaces the path, an
// empty list withdraws it; the blocks are untouched.
func TestPrivilegedSetMembership(t *testing.T) {
	ns.Privileged(t)
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"),
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)},
		Originate:       []netip.Prefix{pfx("10.70.0.0/26")},
	}
	bCfg := Config{
		ASN: 65002, RouterID: ip("10.0.0.2"),
		ListenAddresses: []netip.Addr{ip("127.0.0.2")},
		Neighbors:       []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)},
	}
	sp := speakers(t, aCfg, bCfg)
	a, b := sp[0], sp[1]
	rb := newRIB(b)
	via := ip("127.0.0.1")
	rb.waitRoute(t, pfx("10.70.0.0/26"), via)

	web, other := pfx("10.70.0.5/32"), pfx("10.70.0.6/32")
	if err := a.SetMembership(t.Context(), map[netip.Prefix][]uint32{web: {20, 10}, other: {30}}); err != nil {
		t.Fatal(err)
	}
	rb.waitMembership(t, web, []uint32{10, 20})
	rb.waitMembership(t, other, []uint32{30})
	for _, rt := range rb.seen {
		if rt.Prefix == web && len(rt.Paths) > 0 {
			if c := rt.Paths[0].Communities; c == nil || !slices.Contains(c.Large, LargeCommunity{65001, 0, MembershipMarker}) ||
				!slices.Contains(c.Large, LargeCommunity{65001, 10, 0}) {
				t.Errorf("membership route %v carries %+v, want 65001:0:1 and 65001:10:0", web, c)
			}
		}
	}
	if _, ok := (Route{Prefix: pfx("10.70.0.0/26"), Paths: []Path{{NextHop: via}}}).Membership(); ok {
		t.Error("a route without communities reads as a membership route")
	}

	// web leaves group 20; other leaves every group.
	if err := a.SetMembership(t.Context(), map[netip.Prefix][]uint32{web: {10}}); err != nil {
		t.Fatal(err)
	}
	rb.waitMembership(t, web, []uint32{10})
	rb.waitMembership(t, other, nil)
	if got := rb.routes[pfx("10.70.0.0/26")]; !slices.Equal(got, []netip.Addr{via}) {
		t.Errorf("block via %v after membership changes, want via %v", got, via)
	}
}

// TestMembershipOfOrdinaryRouteAllocatesNothing: every learned route is
// asked on its way to the FIB, so the common case must stay free.
func TestMembershipOfOrdinaryRouteAllocatesNothing(t *testing.T) {
	c := &Communities{Large: []LargeCommunity{{65001, 7, 7}}, Standard: []uint32{1}}
	r := Route{Prefix: pfx("10.1.0.0/24"), NextHops: []netip.Addr{ip("10.0.0.1")}, Paths: []Path{{NextHop: ip("10.0.0.1"), Communities: c}}}
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := r.Membership(); ok {
			t.Fatal("an ordinary route reads as a membership route")
		}
	}); n != 0 {
		t.Errorf("Membership of an ordinary route: %v allocations, want 0", n)
	}
	c = &Communities{Large: []LargeCommunity{{65001, 20, 0}, {65001, 0, MembershipMarker}, {65001, 10, 0}}}
	r.Paths = append(r.Paths, Path{NextHop: ip("10.0.0.2"), Communities: c}, Path{NextHop: ip("10.0.0.3"), Communities: c})
	if ids, ok := r.Membership(); !ok || !slices.Equal(ids, []uint32{10, 20}) {
		t.Errorf("Membership over three paths: %v %v, want [10 20] true", ids, ok)
	}
}

package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedBIRDCommunities: routes BIRD announces with standard and
// large communities arrive with them, interned (two routes with the same
// communities share one list), and a change of communities alone is
// published as an update.
func TestPrivilegedBIRDCommunities(t *testing.T) {
	ns.Privileged(t)
	p, q := pfx("10.70.0.0/24"), pfx("10.71.0.0/24")
	attrs := func(large int) string {
		return fmt.Sprintf("bgp_community.add((65002,10)); bgp_large_community.add((65002,1,%d));", large)
	}
	spec := birdSpec{Statics4: []netip.Prefix{p, q}, StaticAttrs: map[netip.Prefix]string{p: attrs(7), q: attrs(7)}}
	b := startBIRDWith(t, spec)
	s := speaker(t, birdConfig())
	r := newRIB(s)
	r.waitRoute(t, p, ip("10.99.0.2"))
	r.waitRoute(t, q, ip("10.99.0.2"))

	rp, rq := lastSeen(r, p), lastSeen(r, q)
	if len(rp.Paths) != 1 || len(rq.Paths) != 1 {
		t.Fatalf("routes %+v and %+v, want one path each", rp, rq)
	}
	c := rp.Paths[0].Communities
	if c == nil || !slices.Equal(c.Standard, []uint32{65002<<16 | 10}) || !slices.Equal(c.Large, []LargeCommunity{{65002, 1, 7}}) {
		t.Fatalf("communities of %v = %+v, want 65002:10 and 65002:1:7", p, c)
	}
	if rp.Paths[0].NextHop != ip("10.99.0.2") {
		t.Errorf("path of %v via %v, want 10.99.0.2", p, rp.Paths[0].NextHop)
	}
	if rq.Paths[0].Communities != c || &rq.Paths[0].Communities.Large[0] != &c.Large[0] {
		t.Errorf("%v and %v carry equal communities in two copies, want one interned list", p, q)
	}

	// Only q's large community changes: an update with the new list, the
	// same next hop.
	spec.StaticAttrs[q] = attrs(8)
	n := len(r.seen)
	b.reconfigure(t, birdConf(spec))
	for deadline := time.Now().Add(patience); ; r.drainOnce(time.Second) {
		if rq = lastSeen(r, q); len(rq.Paths) == 1 && slices.Equal(rq.Paths[0].Communities.Large, []LargeCommunity{{65002, 1, 8}}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no update of %v with large community 65002:1:8; last %+v", q, rq)
		}
	}
	if !slices.Equal(rq.NextHops, []netip.Addr{ip("10.99.0.2")}) {
		t.Errorf("%v after the community change via %v, want 10.99.0.2", q, rq.NextHops)
	}
	for _, x := range r.seen[n:] {
		if x.Prefix == p {
			t.Errorf("%v published again though nothing of it changed: %+v", p, x)
		}
	}
}

// lastSeen is the latest drained route of p.
func lastSeen(r *rib, p netip.Prefix) Route {
	for i := len(r.seen) - 1; i >= 0; i-- {
		if r.seen[i].Prefix == p {
			return r.seen[i]
		}
	}
	return Route{}
}

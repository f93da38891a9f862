package bgp

import (
	"net/netip"
	"slices"
	"testing"
)

// fromPeer is a learned candidate from neighbor src (next hop src).
func fromPeer(src, asPath string) candidate {
	c := learned(src, asPath)
	c.src = ip(src)
	return c
}

// TestRouteTableMergesMultipathDelta: with GoBGP's multipath on, v4.8's
// best-path events carry each prefix's change of multipath set (members
// that left as withdrawals, members that joined or changed), which the
// table merges into the prefix's candidates; a member is known by source
// and ADD-PATH id, not by next hop.
func TestRouteTableMergesMultipathDelta(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true, MultipleAS: true})
	gen := rt.newGeneration(true)
	p := pfx("10.9.0.0/24")
	a, b, c := fromPeer("192.0.2.1", "x"), fromPeer("192.0.2.2", "x"), fromPeer("192.0.2.3", "x")
	step := func(ups []pathUpdate, want ...string) {
		t.Helper()
		rt.onPaths(gen, ups)
		var nhs []netip.Addr
		for _, w := range want {
			nhs = append(nhs, ip(w))
		}
		got := rt.drain()
		if len(got) != 1 || got[0].Prefix != p || !slices.Equal(got[0].NextHops, nhs) {
			t.Fatalf("drain = %v, want %v via %v", got, p, nhs)
		}
	}
	// The watch's RIB dump: the whole set.
	step([]pathUpdate{{prefix: p, c: a}, {prefix: p, c: b}}, "192.0.2.1", "192.0.2.2")
	// c joins: a and b stay.
	step([]pathUpdate{{prefix: p, c: c}}, "192.0.2.1", "192.0.2.2", "192.0.2.3")
	// a leaves (withdrawal first), b changes its next hop (same source).
	b2 := b
	b2.nextHop = ip("192.0.2.22")
	step([]pathUpdate{{prefix: p, c: a, withdraw: true}, {prefix: p, c: b2}}, "192.0.2.3", "192.0.2.22")
	// The last members leave: the prefix is gone.
	step([]pathUpdate{{prefix: p, c: b2, withdraw: true}, {prefix: p, c: c, withdraw: true}})
	if n := rt.learnedCount(); n != 0 {
		t.Errorf("learned = %d after every member left, want 0", n)
	}
}

// TestRouteTableDeltaWithoutRelax: without MultipleAS the members whose
// AS_PATH differs from the longest-standing member's are left out, and
// when that member leaves the next one's AS_PATH counts.
func TestRouteTableDeltaWithoutRelax(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true})
	gen := rt.newGeneration(true)
	p := pfx("10.9.0.0/24")
	a, b := fromPeer("192.0.2.1", "x"), fromPeer("192.0.2.2", "y")
	rt.onPaths(gen, []pathUpdate{{prefix: p, c: a}, {prefix: p, c: b}})
	if got := rt.drain(); len(got) != 1 || !slices.Equal(got[0].NextHops, []netip.Addr{ip("192.0.2.1")}) {
		t.Fatalf("drain = %v, want %v via 192.0.2.1 only", got, p)
	}
	rt.onPaths(gen, []pathUpdate{{prefix: p, c: a, withdraw: true}})
	if got := rt.drain(); len(got) != 1 || !slices.Equal(got[0].NextHops, []netip.Addr{ip("192.0.2.2")}) {
		t.Fatalf("drain after the first member left = %v, want %v via 192.0.2.2", got, p)
	}
}

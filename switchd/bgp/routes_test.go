package bgp

import (
	"net/netip"
	"slices"
	"testing"
)

func TestRouteTableExtendsPrefixListedTwiceInOneEvent(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true, MultipleAS: true})
	p, q := pfx("10.9.0.0/24"), pfx("10.9.1.0/24")
	rt.onPaths(0, []pathUpdate{{prefix: p, c: learned("192.0.2.9", "a")}})
	rt.drain()
	// p's paths are not listed one after another: the event still gives p
	// exactly the two it lists, not just the last run.
	rt.onPaths(0, []pathUpdate{
		{prefix: p, c: learned("192.0.2.1", "a")},
		{prefix: q, c: learned("192.0.2.1", "a")},
		{prefix: p, c: learned("192.0.2.2", "a")},
	})
	want := []Route{
		{Prefix: p, NextHops: []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2")}},
		{Prefix: q, NextHops: []netip.Addr{ip("192.0.2.1")}},
	}
	if got := rt.drain(); !slices.EqualFunc(got, want, routeEqual) {
		t.Fatalf("drain = %v, want %v", got, want)
	}
}

func TestRouteTableSharedSlicesStayCorrect(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true, MultipleAS: true})
	var ups []pathUpdate
	for i := range 4 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)
		ups = append(ups, pathUpdate{prefix: p, c: learned("192.0.2.1", "a")}, pathUpdate{prefix: p, c: learned("192.0.2.2", "a")})
	}
	rt.onPaths(0, ups)
	first := rt.drain()
	if len(first) != 4 {
		t.Fatalf("drain = %v, want 4 routes", first)
	}
	// One prefix loses a path; the others' sets (possibly the same slice)
	// must not change.
	rt.onPaths(0, []pathUpdate{{prefix: first[0].Prefix, c: learned("192.0.2.2", "a")}})
	if got := rt.drain(); len(got) != 1 || !slices.Equal(got[0].NextHops, []netip.Addr{ip("192.0.2.2")}) {
		t.Fatalf("drain = %v, want %v via 192.0.2.2 only", got, first[0].Prefix)
	}
	for _, r := range first[1:] {
		if !slices.Equal(r.NextHops, []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2")}) {
			t.Fatalf("an earlier drained route changed: %v", r)
		}
	}
	// A selection change re-evaluates them from the stored candidates.
	rt.configure(Multipath{}, nil)
	got := rt.drain()
	if len(got) != 3 {
		t.Fatalf("drain after multipath off = %v, want the 3 two-path prefixes with one next hop", got)
	}
	for _, r := range got {
		if !slices.Equal(r.NextHops, []netip.Addr{ip("192.0.2.1")}) {
			t.Fatalf("after multipath off: %v, want via 192.0.2.1", r)
		}
	}
}

func TestRouteTableDrainEachBoundsAndCounts(t *testing.T) {
	rt := ecmp(Multipath{Enabled: true})
	var ups []pathUpdate
	for i := range 10 {
		ups = append(ups, pathUpdate{prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), c: learned("192.0.2.1", "a")})
	}
	rt.onPaths(0, ups)
	<-rt.kick
	seen := map[netip.Prefix]bool{}
	take := func(max int) bool {
		return rt.drainEach(max, func(r Route) {
			if seen[r.Prefix] {
				t.Fatalf("%v handed out twice", r.Prefix)
			}
			seen[r.Prefix] = true
		})
	}
	if !take(4) || len(seen) != 4 {
		t.Fatalf("first batch: %d routes, want 4 and more left", len(seen))
	}
	select {
	case <-rt.kick:
	default:
		t.Fatal("no kick for the routes left behind")
	}
	for take(4) {
	}
	if len(seen) != 10 || rt.learnedCount() != 10 {
		t.Fatalf("drained %d, learned %d; want 10 and 10", len(seen), rt.learnedCount())
	}
	rt.onPaths(0, []pathUpdate{{prefix: ups[0].prefix, c: ups[0].c, withdraw: true}})
	rt.drain()
	if rt.learnedCount() != 9 {
		t.Fatalf("learned after a withdrawal = %d, want 9", rt.learnedCount())
	}
	// A new watch generation withdraws everything not announced again.
	rt.newGeneration()
	if got := rt.drain(); len(got) != 9 || len(got[0].NextHops) != 0 || rt.learnedCount() != 0 {
		t.Fatalf("drain after a new generation = %v (learned %d), want 9 withdrawals", got, rt.learnedCount())
	}
}

package bgp

import (
	"fmt"
	"maps"
	"math/rand/v2"
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
	rt.newGeneration(false)
	if got := rt.drain(); len(got) != 9 || len(got[0].NextHops) != 0 || rt.learnedCount() != 0 {
		t.Fatalf("drain after a new generation = %v (learned %d), want 9 withdrawals", got, rt.learnedCount())
	}
}

// TestRouteTableRandomAgainstFreshTable drives a table through random
// events, selection changes, generations and bounded drains, and checks
// after every full drain that what the drains handed out (applied in
// order) is what a fresh table computes from the same candidates, that no
// route repeated what was already handed out, and that the interned sets
// are all released once every prefix is gone.
func TestRouteTableRandomAgainstFreshTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var prefixes []netip.Prefix
	for i := range 12 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i % 4), 0, 0}), 16+i/4*8))
		prefixes = append(prefixes, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/%d", i%4, 48+i/4*8)))
	}
	nhs := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.254", "2001:db8::1", "2001:db8::2"}
	paths := []string{"a", "b"}
	mps := []Multipath{{}, {Enabled: true}, {Enabled: true, MultipleAS: true}, {Enabled: true, MultipleAS: true, MaxPaths: 2}}
	rt := newRouteTable()
	mp, own := mps[1], []netip.Addr{ip("192.0.2.254")}
	rt.configure(mp, own)
	gen := rt.newGeneration(false)
	model := map[netip.Prefix][]candidate{}
	out := map[netip.Prefix][]netip.Addr{}
	take := func(r Route) {
		if slices.Equal(out[r.Prefix], r.NextHops) {
			t.Fatalf("%v handed out again with the same set %v", r.Prefix, r.NextHops)
		}
		if len(r.NextHops) == 0 {
			delete(out, r.Prefix)
		} else {
			out[r.Prefix] = slices.Clone(r.NextHops)
		}
	}
	check := func(step int) {
		for rt.drainEach(1+rng.IntN(3), take) {
		}
		fresh := newRouteTable()
		fresh.configure(mp, own)
		for p, cs := range model {
			var ups []pathUpdate
			for _, c := range cs {
				ups = append(ups, pathUpdate{prefix: p, c: c})
			}
			fresh.onPaths(0, ups)
		}
		want := map[netip.Prefix][]netip.Addr{}
		for _, r := range fresh.drain() {
			want[r.Prefix] = r.NextHops
		}
		if !maps.EqualFunc(out, want, slices.Equal) {
			t.Fatalf("step %d: handed out %v, want %v", step, out, want)
		}
		if rt.learnedCount() != len(out) {
			t.Fatalf("step %d: learned %d, want %d", step, rt.learnedCount(), len(out))
		}
	}
	for step := range 3000 {
		switch r := rng.IntN(100); {
		case r < 80:
			var ups []pathUpdate
			n := 1 + rng.IntN(4)
			if rng.IntN(10) == 0 {
				n = 20 // long events find repeated prefixes another way
			}
			for range n {
				p := prefixes[rng.IntN(len(prefixes))]
				if rng.IntN(4) == 0 {
					ups = append(ups, pathUpdate{prefix: p, withdraw: true})
					continue
				}
				for range 1 + rng.IntN(3) {
					c := learned(nhs[rng.IntN(len(nhs))], paths[rng.IntN(len(paths))])
					if rng.IntN(20) == 0 {
						c = candidate{local: true}
					}
					ups = append(ups, pathUpdate{prefix: p, c: c})
				}
			}
			rt.onPaths(gen, ups)
			listed := map[netip.Prefix]bool{}
			for _, u := range ups {
				if !listed[u.prefix] {
					listed[u.prefix] = true
					delete(model, u.prefix)
				}
				if !u.withdraw {
					model[u.prefix] = append(model[u.prefix], u.c)
				}
			}
		case r < 88:
			mp = mps[rng.IntN(len(mps))]
			rt.configure(mp, own)
		case r < 92:
			a := ip(nhs[rng.IntN(len(nhs))])
			rt.addOwn(gen, a)
			if !slices.Contains(own, a) {
				own = append(own, a)
			}
		case r < 95:
			gen = rt.newGeneration(false)
			clear(model)
		}
		if rng.IntN(3) == 0 {
			check(step)
		}
	}
	gen = rt.newGeneration(false)
	clear(model)
	check(-1)
	if len(rt.cands.index) != 0 || len(rt.nhs.index) != 0 {
		t.Fatalf("with no prefixes left, %d candidate sets and %d next-hop sets are still interned", len(rt.cands.index), len(rt.nhs.index))
	}
}

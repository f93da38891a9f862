package fib

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// TestAFTView: the view shows what the kernel holds, not what is
// desired; of two routes for a prefix the lower metric; and a walk
// running on another goroutine while the owner installs and deletes
// routes sees no torn state (run with -race: every write of the map is
// under the view's lock).
func TestAFTView(t *testing.T) {
	ctx := context.Background()
	fake := &fakeDataplane{}
	tb := newTable(MainTable, withDataplane(fake))
	v := tb.View()
	gw := netip.MustParseAddr("192.0.2.1")
	bgp, static := route("10.1.0.0/24", 20, gw), route("10.1.0.0/24", 1, gw)
	if err := tb.SetRoute(bgp); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Lookup(pfx("10.1.0.0/24")); ok {
		t.Fatal("a route desired but not applied is in the view")
	}
	if err := tb.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := v.Lookup(pfx("10.1.0.0/24")); !ok || r.Metric != 20 || len(r.NextHops) != 1 || r.NextHops[0].Gateway != gw {
		t.Fatalf("after Apply: %+v, %v", r, ok)
	}
	if err := tb.SetRoute(static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	var walked []AFTRoute
	if err := v.Walk(func(rs []AFTRoute) error { walked = append(walked, rs...); return nil }); err != nil {
		t.Fatal(err)
	}
	if r, ok := v.Lookup(pfx("10.1.0.0/24")); !ok || r.Metric != 1 || len(walked) != 1 || walked[0].Metric != 1 {
		t.Fatalf("static over BGP: lookup %+v, walk %+v; want metric 1 only", r, walked)
	}
	tb.DeleteRoute(static.Key)
	if err := tb.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := v.Lookup(pfx("10.1.0.0/24")); !ok || r.Metric != 20 {
		t.Fatalf("static gone: %+v, %v; want the BGP route back", r, ok)
	}

	// Concurrent walks during installs and deletions of 2,000 routes.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := v.Walk(func(rs []AFTRoute) error {
				for _, r := range rs {
					if !r.Prefix.IsValid() || len(r.NextHops) != 1 {
						return fmt.Errorf("torn route %+v", r)
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for round := range 3 {
		for i := range 2000 {
			r := route(fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), 20, gw)
			if round%2 == 0 {
				if err := tb.SetRoute(r); err != nil {
					t.Fatal(err)
				}
			} else {
				tb.DeleteRoute(r.Key)
			}
		}
		if err := tb.Apply(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	n := 0
	if err := v.Walk(func(rs []AFTRoute) error { n += len(rs); return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2001 {
		t.Errorf("walk after the rounds: %d routes, want 2001", n)
	}
}

// TestPrivilegedAFTGroups: the group view of a Kernel is what it wrote:
// an ECMP route's group has both gateways as members, each a nexthop
// object with its interface; the route names the group; a withdrawn
// route's group and objects leave the view once collected.
func TestPrivilegedAFTGroups(t *testing.T) {
	tp := newTopo(t, "aftgrp")
	k, _, tb := monitoredTable(t, tp)
	mustApply(t, tb)
	ecmp := route("198.51.100.0/24", 0, gw4a, gw4b)
	mustSet(t, tb, ecmp)
	mustApply(t, tb)
	r, ok := tb.View().Lookup(ecmp.Key.Dst)
	if !ok || r.Group == 0 {
		t.Fatalf("route in view: %+v, %v; want it over a group", r, ok)
	}
	gs, nhs := k.AFT()
	if vg, vn := tb.View().AFT(); !slices.EqualFunc(vg, gs, func(a, b AFTGroup) bool { return a.ID == b.ID && slices.Equal(a.Members, b.Members) }) || !slices.Equal(vn, nhs) {
		t.Errorf("the Table's view %+v %+v differs from its Kernel's %+v %+v", vg, vn, gs, nhs)
	}
	byID := map[uint64]AFTNextHop{}
	for _, nh := range nhs {
		byID[nh.ID] = nh
	}
	var g *AFTGroup
	for i := range gs {
		if gs[i].ID == uint64(r.Group) {
			g = &gs[i]
		}
	}
	if g == nil || len(g.Members) != 2 {
		t.Fatalf("group %d: %+v in %+v", r.Group, g, gs)
	}
	got := map[netip.Addr]int{}
	for _, m := range g.Members {
		nh := byID[m.NextHop]
		got[nh.Gateway] = nh.Ifindex
		if m.Weight != 1 {
			t.Errorf("member %+v: weight %d, want 1", m, m.Weight)
		}
	}
	if got[gw4a] != tp.a0 || got[gw4b] != tp.a1 {
		t.Errorf("members' next hops %v, want %v on %d and %v on %d", got, gw4a, tp.a0, gw4b, tp.a1)
	}
	tb.DeleteRoute(ecmp.Key)
	mustApply(t, tb)
	if _, ok := tb.View().Lookup(ecmp.Key.Dst); ok {
		t.Error("a deleted route stays in the view")
	}
	if gs, _ := k.AFT(); slices.ContainsFunc(gs, func(x AFTGroup) bool { return x.ID == uint64(r.Group) }) {
		t.Errorf("group %d of the deleted route stays in the view: %+v", r.Group, gs)
	}
}

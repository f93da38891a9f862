package fib

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// kicked reports whether the feed signalled, without waiting.
func kicked(tb *Table) bool {
	select {
	case <-tb.Updated():
		return true
	default:
		return false
	}
}

// TestPrivilegedRouteFeed: a route set and applied appears in the feed
// once, as the kernel has it; a second Apply and a resync that finds the
// same publish nothing; a deletion appears; so does a route deleted
// behind switchd's back (a Monitor event), and its repair.
func TestPrivilegedRouteFeed(t *testing.T) {
	tp := newTopo(t, "feed")
	_, m, tb := monitoredTable(t, tp, WithUpdates())
	mustApply(t, tb)
	if kicked(tb) || len(tb.DrainUpdates()) != 0 {
		t.Fatal("the start-up dump of an empty table published something")
	}
	ecmp, dev := route("198.51.100.0/24", 0, gw4a, gw4b), Route{Key: RouteKey{Dst: pfx("203.0.113.7/32")}, NextHops: []NextHop{{Ifindex: tp.a0}}}
	mustSet(t, tb, ecmp, dev)
	mustApply(t, tb)
	if !kicked(tb) {
		t.Fatal("no kick after an Apply that installed routes")
	}
	ups := tb.DrainUpdates()
	if len(ups) != 2 || ups[0].Deleted || ups[1].Deleted {
		t.Fatalf("updates %+v, want the two routes", ups)
	}
	if u := ups[0]; u.Route.Key.Dst != ecmp.Key.Dst || u.Group == 0 || !slices.Equal(gatewaysOf(u.Route), []netip.Addr{gw4a, gw4b}) ||
		u.Route.NextHops[0].Ifindex != tp.a0 || u.Offload != 0 {
		t.Errorf("ECMP route update %+v, want both gateways with their interfaces, over a group, no offload", u)
	}
	if u := ups[1]; u.Route.Key.Dst != dev.Key.Dst || u.Group != 0 || len(u.Route.NextHops) != 1 || u.Route.NextHops[0].Ifindex != tp.a0 {
		t.Errorf("device route update %+v, want inline on a0", u)
	}

	mustApply(t, tb)
	tb.QueueResync()
	mustApply(t, tb)
	if kicked(tb) || len(tb.DrainUpdates()) != 0 {
		t.Error("a second Apply or an unchanged resync published something")
	}

	tb.DeleteRoute(dev.Key)
	mustApply(t, tb)
	if ups := tb.DrainUpdates(); len(ups) != 1 || !ups[0].Deleted || ups[0].Route.Key.Dst != dev.Key.Dst {
		t.Errorf("after a delete: %+v, want the deletion of %v", ups, dev.Key.Dst)
	}

	// Deleted behind switchd's back: the Monitor's event publishes the
	// deletion, the repair the route again.
	if _, err := tp.r.Run(context.Background(), "ip", "route", "del", "198.51.100.0/24", "proto", protoStr); err != nil {
		t.Fatal(err)
	}
	feed(t, m, tb, func() bool { return tb.Pending() == 1 })
	if ups := tb.DrainUpdates(); len(ups) != 1 || !ups[0].Deleted {
		t.Errorf("after a foreign delete: %+v, want the deletion", ups)
	}
	mustApply(t, tb)
	if ups := tb.DrainUpdates(); len(ups) != 1 || ups[0].Deleted || ups[0].Route.Key.Dst != ecmp.Key.Dst {
		t.Errorf("after the repair: %+v, want the route back", ups)
	}
}

// TestPrivilegedRouteFeedOffloadFlags: the hardware flags a switchdev
// driver sets reach the feed. No driver here sets them, so the test takes
// the kernel's own message for the route (a dump) and sets the flags in
// it, as a driver's notification would carry them.
func TestPrivilegedRouteFeedOffloadFlags(t *testing.T) {
	tp := newTopo(t, "feedoff")
	k := openKernel(t, tp.r)
	tb := newKernelTable(t, k, MainTable, ModeNexthopGroups, WithUpdates())
	r := route("198.51.100.0/24", 0, gw4a, gw4b)
	mustSet(t, tb, r)
	mustApply(t, tb)
	tb.DrainUpdates()

	c, err := k.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var captured []byte
	err = dumpRoutes(context.Background(), c, MainTable, nil, func(data []byte) {
		var d routeDecoder
		if kr, ok := d.decode(data); ok && kr.route.Key.Dst == r.Key.Dst {
			captured = slices.Clone(data)
		}
	})
	if err != nil || captured == nil {
		t.Fatalf("dump: %v, message of %v found: %v", err, r.Key.Dst, captured != nil)
	}
	for _, c := range []struct {
		flags uint32
		want  Offload
	}{
		{unix.RTM_F_OFFLOAD, Offloaded},
		{unix.RTM_F_OFFLOAD | unix.RTM_F_TRAP, Offloaded | Trapped},
		{unix.RTM_F_OFFLOAD_FAILED, OffloadFailed},
		{0, 0},
	} {
		msg := slices.Clone(captured)
		binary.NativeEndian.PutUint32(msg[8:], binary.NativeEndian.Uint32(msg[8:])|c.flags)
		var d routeDecoder
		kr, ok := d.decode(msg)
		if !ok {
			t.Fatalf("flags %#x: message not decoded", c.flags)
		}
		tb.OnRouteEvent(RouteEvent{Route: kr.route})
		ups := tb.DrainUpdates()
		if len(ups) != 1 || ups[0].Offload != c.want || ups[0].Deleted {
			t.Errorf("flags %#x: updates %+v, want one with offload %v", c.flags, ups, c.want)
		}
		if o, _ := tb.Offload(r.Key); o != c.want {
			t.Errorf("flags %#x: Offload = %v, want %v", c.flags, o, c.want)
		}
	}
	// The same state again changes nothing.
	var d routeDecoder
	kr, _ := d.decode(captured)
	tb.OnRouteEvent(RouteEvent{Route: kr.route})
	if ups := tb.DrainUpdates(); len(ups) != 0 {
		t.Errorf("an event that changes nothing published %+v", ups)
	}
}

// TestRouteFeedPlan (no root): the feed follows every way the kernel view
// changes: writes, a group rewrite for a next hop down, a failure (none),
// an interrupted Apply (only what was sent).
func TestRouteFeedPlan(t *testing.T) {
	f := newGroupFake()
	urgent := false
	tb := fakeTable(t, f, WithUpdates(), WithBatchSize(2), WithInterrupt(func() bool { return urgent }))
	rs := manySet(3, fa, fb)
	mustSet(t, tb, rs...)
	urgent = true
	if err := tb.Apply(context.Background()); err != nil || !tb.More() {
		t.Fatalf("Apply = %v, More %v; want an interrupted Apply", err, tb.More())
	}
	if ups := tb.DrainUpdates(); len(ups) != 2 || ups[0].Route.Key.Dst != rs[0].Key.Dst {
		t.Fatalf("after an interrupted Apply: %+v, want the 2 routes sent", ups)
	}
	urgent = false
	mustApply(t, tb)
	if ups := tb.DrainUpdates(); len(ups) != 1 || ups[0].Route.Key.Dst != rs[2].Key.Dst || ups[0].Group == 0 {
		t.Fatalf("after the rest: %+v, want the third route over its group", ups)
	}
	tb.NextHopDown(fa)
	mustApply(t, tb)
	ups := tb.DrainUpdates()
	if len(ups) != 3 {
		t.Fatalf("after NextHopDown: %d updates, want the 3 routes over the rewritten group", len(ups))
	}
	for _, u := range ups {
		if !slices.Equal(gatewaysOf(u.Route), []netip.Addr{fb}) {
			t.Errorf("after NextHopDown: %v, want via %v", u.Route, fb)
		}
	}
	f.fail = map[netip.Prefix]error{pfx("10.9.0.0/16"): unix.ENETUNREACH}
	mustSet(t, tb, route("10.9.0.0/16", 0, fb))
	if err := tb.Apply(context.Background()); err == nil {
		t.Fatal("Apply with a failing route returned nil")
	}
	if ups := tb.DrainUpdates(); len(ups) != 0 {
		t.Errorf("a failed write published %+v", ups)
	}
}

package fib

import (
	"context"
	"strings"
	"testing"
)

// A BGP session dies: NextHopDown alone (before any withdrawal) makes the
// routes of the group resolve via the surviving next hop, with one group
// write and no route write. The withdrawals that follow write nothing;
// routes that come back via the gateway get it back with one group write.
func TestPrivilegedNextHopDownOneGroupWrite(t *testing.T) {
	const n = 1000
	tp := newTopo(t, "nhdown")
	ctx := context.Background()
	tb := newModeTable(t, tp, ModeNexthopGroups)
	both := manySet(n, gw4a, gw4b)
	onlyA := route("198.51.100.0/24", 0, gw4a) // a group that would be empty
	mustSet(t, tb, both...)
	mustSet(t, tb, onlyA)
	mustApply(t, tb)
	routeGet := func(dst string) string {
		t.Helper()
		out, err := tp.r.Run(ctx, "ip", "route", "get", dst)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	viaB := func(when string) {
		t.Helper()
		for _, dst := range []string{"16.0.0.1", "16.1.2.3", "16.3.231.9"} {
			for _, sport := range []string{"1", "2", "3", "4", "5", "6", "7", "8"} { // several flows: none may hash to A
				out, err := tp.r.Run(ctx, "ip", "route", "get", dst, "ipproto", "udp", "sport", sport, "dport", "53")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, "via 192.0.2.3 dev a1") {
					t.Fatalf("%s: ip route get %s = %q, want via the survivor", when, dst, out)
				}
			}
		}
	}

	before := tb.Stats()
	tb.NextHopDown(gw4a)
	mustApply(t, tb)
	s := tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops-before.Nexthops != 1 {
		t.Errorf("NextHopDown: stats %+v -> %+v, want one group write and no route write", before, s)
	}
	viaB("after NextHopDown")
	if out := routeGet("198.51.100.1"); !strings.Contains(out, "via 192.0.2.1 dev a0") {
		t.Errorf("route whose only next hop is down = %q, want left alone (via A) until withdrawn", out)
	}
	if !tb.InSync() {
		t.Errorf("not in sync after NextHopDown: %d pending", tb.Pending())
	}

	// The withdrawals arrive: nothing left to write.
	before = tb.Stats()
	one := manySet(n, gw4b)
	mustSet(t, tb, one...)
	tb.DeleteRoute(onlyA.Key)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites()-before.RouteWrites() != 1 || s.Nexthops-before.Nexthops > 2 || s.InPlace != before.InPlace {
		t.Errorf("withdrawals: stats %+v -> %+v, want only the delete of the single-path route (and its group)", before, s)
	}
	if len(tb.down) != 0 {
		t.Errorf("down marks %v left after every route via A was withdrawn", tb.DownNextHops())
	}
	viaB("after the withdrawals")
	// A resync agrees that the kernel is right.
	w := tb.Stats().Writes()
	tb.QueueResync()
	mustApply(t, tb)
	if d := tb.Stats().Writes() - w; d != 0 {
		t.Errorf("resync after NextHopDown wrote %d times", d)
	}

	// The session comes back: routes via A again: A's nexthop object
	// (deleted with its last group) and one group write.
	before = tb.Stats()
	mustSet(t, tb, both...)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops-before.Nexthops != 2 || s.InPlace-before.InPlace != n {
		t.Errorf("routes back via A: stats %+v -> %+v, want a nexthop object, one group write, %d routes moved in place", before, s, n)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "16.0.5.0/24"); len(rs) != 1 || len(gateways(rs[0])) != 2 {
		t.Errorf("16.0.5.0/24 after A came back: %+v, want two paths", rs)
	}

	// A flap: A goes down and comes back before any withdrawal was
	// handed over; NextHopUp gives the group A back.
	tb.NextHopDown(gw4a)
	mustApply(t, tb)
	viaB("after the second NextHopDown")
	before = tb.Stats()
	tb.NextHopUp(gw4a)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops-before.Nexthops != 1 {
		t.Errorf("NextHopUp: stats %+v -> %+v, want one group write", before, s)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "16.0.5.0/24"); len(rs) != 1 || len(gateways(rs[0])) != 2 {
		t.Errorf("16.0.5.0/24 after NextHopUp: %+v, want two paths", rs)
	}
	if !tb.InSync() {
		t.Errorf("not in sync after NextHopUp: %d pending", tb.Pending())
	}
}

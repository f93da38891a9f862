package fib

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// Recursive next hops: loopbacks of peers that are not on a link of tp's
// router, reachable only through another route.
var (
	lo4a = netip.MustParseAddr("10.255.0.2")
	lo4b = netip.MustParseAddr("10.255.0.3")
	lo6a = netip.MustParseAddr("2001:db8:ff::2")
)

// kernelGateways returns the gateways ("gw@dev", sorted) of the kernel's
// route to dst, nil if the kernel has none.
func kernelGateways(t testing.TB, tp *topo, dst string) []string {
	t.Helper()
	fam := "-4"
	if netip.MustParsePrefix(dst).Addr().Is6() {
		fam = "-6"
	}
	rs := findRoutes(kernelRoutes(t, tp.r, fam), dst)
	if len(rs) == 0 {
		return nil
	}
	if len(rs) > 1 {
		t.Fatalf("kernel has %d routes to %s", len(rs), dst)
	}
	return gateways(rs[0])
}

func wantGateways(t testing.TB, tp *topo, dst string, want ...string) {
	t.Helper()
	if got := kernelGateways(t, tp, dst); !slices.Equal(got, want) {
		t.Errorf("kernel route to %s via %v, want %v", dst, got, want)
	}
}

// TestPrivilegedRecursiveNextHopFollowsResolver: a route via a gateway
// reachable only through another of switchd's routes is installed via
// that route's next hops, follows them when they change, leaves the kernel
// when the resolver goes (reported, in sync, no retries) and comes back
// with it. Both writers, IPv4 and IPv6.
func TestPrivilegedRecursiveNextHopFollowsResolver(t *testing.T) {
	for _, mode := range []string{ModeNexthopGroups, ModeMultipath} {
		t.Run(mode, func(t *testing.T) { testRecursiveFollows(t, mode) })
	}
}

func testRecursiveFollows(t *testing.T, mode string) {
	tp := newTopo(t, "recurse")
	tb := newModeTable(t, tp, mode, WithNextHopResolution())
	// Two routes via each loopback: they share the resolution (and, with
	// nexthop groups, one kernel group).
	p4, q4 := route("198.51.100.0/24", 20, lo4a), route("203.0.113.0/24", 20, lo4a)
	p6 := route("2001:db8:100::/48", 20, lo6a)
	r4, r6 := route("10.255.0.2/32", 20, gw4a), route("2001:db8:ff::2/128", 20, gw6a)
	mustSet(t, tb, p4, q4, p6, r4, r6)
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.1@a0")
	wantGateways(t, tp, "203.0.113.0/24", "192.0.2.1@a0")
	wantGateways(t, tp, "2001:db8:100::/48", "2001:db8::1@a0")
	if nhs, err := tb.Resolution(p4.Key); err != nil || len(nhs) != 1 || nhs[0].Gateway != gw4a {
		t.Errorf("Resolution(%v) = %v, %v; want via %v", p4.Key, nhs, err, gw4a)
	}
	// The desired view keeps the BGP next hop.
	if rs := tb.Routes(); !slices.ContainsFunc(rs, func(r Route) bool {
		return r.Key == p4.Key && len(r.NextHops) == 1 && r.NextHops[0].Gateway == lo4a
	}) {
		t.Errorf("desired routes %v lost %v", rs, p4)
	}

	// The resolver moves to the other link: so do its dependents.
	before := tb.Stats()
	mustSet(t, tb, route("10.255.0.2/32", 20, gw4b), route("2001:db8:ff::2/128", 20, gw6b))
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.3@a1")
	wantGateways(t, tp, "203.0.113.0/24", "192.0.2.3@a1")
	wantGateways(t, tp, "2001:db8:100::/48", "2001:db8::3@a1")
	if mode == ModeNexthopGroups {
		// Resolver and dependents share groups: each group is rewritten
		// in place, no route is.
		if w := tb.Stats().RouteWrites() - before.RouteWrites(); w != 0 {
			t.Errorf("resolver change wrote %d routes, want 0 (group rewrites only)", w)
		}
	}

	// ECMP resolver: the dependents get both paths.
	mustSet(t, tb, route("10.255.0.2/32", 20, gw4a, gw4b))
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.1@a0", "192.0.2.3@a1")

	// The resolver goes: the dependents leave the kernel, are reported,
	// and the table is in sync with nothing left to retry.
	tb.DeleteRoute(r4.Key)
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24")
	wantGateways(t, tp, "203.0.113.0/24")
	wantGateways(t, tp, "2001:db8:100::/48", "2001:db8::3@a1")
	un := tb.Unresolved()
	if len(un) != 2 || un[0].Key.Dst != p4.Key.Dst || un[1].Key.Dst != q4.Key.Dst || !errors.Is(un[0].Err, ErrUnresolved) {
		t.Errorf("Unresolved() = %+v, want %v and %v", un, p4.Key, q4.Key)
	}
	if _, err := tb.Resolution(p4.Key); !errors.Is(err, ErrUnresolved) {
		t.Errorf("Resolution of an unresolved route: %v, want ErrUnresolved", err)
	}
	if len(tb.Errors()) != 0 {
		t.Errorf("Errors() = %+v, want none: an unresolved route is no failed write", tb.Errors())
	}
	idle := tb.Stats()
	mustApply(t, tb)
	if idle != tb.Stats() {
		t.Errorf("Apply with only unresolved routes did work: %+v -> %+v", idle, tb.Stats())
	}

	// It comes back.
	mustSet(t, tb, r4)
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.1@a0")
	wantGateways(t, tp, "203.0.113.0/24", "192.0.2.1@a0")
	if un := tb.Unresolved(); len(un) != 0 {
		t.Errorf("Unresolved() = %+v after the resolver came back", un)
	}
	// A dump reads the resolved routes back as in sync.
	w := tb.Stats().Writes()
	tb.QueueResync()
	mustApply(t, tb)
	if got := tb.Stats().Writes() - w; got != 0 {
		t.Errorf("resync wrote %d times, want 0", got)
	}
}

// TestPrivilegedRecursiveNextHopViaForeignRoute: the resolver is a static
// route of another owner; the Monitor reports its changes.
func TestPrivilegedRecursiveNextHopViaForeignRoute(t *testing.T) {
	tp := newTopo(t, "recfor")
	ctx := context.Background()
	k := openKernel(t, tp.r)
	m, err := k.NewMonitor(MainTable, WithNextHopResolution())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	run := func(argv ...string) {
		t.Helper()
		if _, err := tp.r.Run(ctx, argv...); err != nil {
			t.Fatal(err)
		}
	}
	run("ip", "route", "add", "10.255.0.0/24", "via", "192.0.2.1", "proto", "static")
	tb := newKernelTable(t, k, MainTable, ModeNexthopGroups, WithNextHopResolution())
	p := route("198.51.100.0/24", 20, lo4a)
	mustSet(t, tb, p)
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.1@a0")

	followed := func(want ...string) func() bool {
		return func() bool {
			if err := tb.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			return slices.Equal(kernelGateways(t, tp, "198.51.100.0/24"), want)
		}
	}
	run("ip", "route", "replace", "10.255.0.0/24", "via", "192.0.2.3", "proto", "static")
	feed(t, m, tb, followed("192.0.2.3@a1"))
	// A more specific foreign route takes over.
	run("ip", "route", "add", "10.255.0.2/32", "via", "192.0.2.1", "proto", "static")
	feed(t, m, tb, followed("192.0.2.1@a0"))
	run("ip", "route", "del", "10.255.0.2/32", "proto", "static")
	feed(t, m, tb, followed("192.0.2.3@a1"))
	run("ip", "route", "del", "10.255.0.0/24", "proto", "static")
	feed(t, m, tb, followed())
	if !tb.InSync() || len(tb.Unresolved()) != 1 {
		t.Errorf("InSync %v, Unresolved %+v; want true and the route", tb.InSync(), tb.Unresolved())
	}
	// A connected route makes the gateway on link: used as it is.
	if err := tp.r.AddAddr("a1", netip.MustParsePrefix("10.255.0.3/24")); err != nil {
		t.Fatal(err)
	}
	feed(t, m, tb, followed("10.255.0.2@a1"))
	for _, r := range findRoutes(kernelRoutes(t, tp.r, "-4"), "10.255.0.0/24") {
		if r.Protocol != protoKernel {
			t.Errorf("route to 10.255.0.0/24 of protocol %s left behind", r.Protocol)
		}
	}
}

// TestPrivilegedRecursiveNextHopECMPUnion: a route via two recursive
// gateways gets the union of what they resolve to; one that stops
// resolving drops out.
func TestPrivilegedRecursiveNextHopECMPUnion(t *testing.T) {
	tp := newTopo(t, "rececmp")
	tb := newModeTable(t, tp, ModeNexthopGroups, WithNextHopResolution())
	p := route("198.51.100.0/24", 20, lo4a, lo4b)
	mustSet(t, tb, p, route("10.255.0.2/32", 20, gw4a), route("10.255.0.3/32", 20, gw4b),
		route("192.0.2.128/25", 20, lo4a)) // a route via one of the two shares nothing
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.1@a0", "192.0.2.3@a1")
	tb.DeleteRoute(route("10.255.0.3/32", 20).Key)
	mustApply(t, tb)
	wantGateways(t, tp, "198.51.100.0/24", "192.0.2.1@a0")
	// Resolved sets share kernel groups with routes that want the same
	// next hops directly.
	mustSet(t, tb, route("203.0.113.0/24", 20, gw4a))
	mustApply(t, tb)
	groups := map[string]uint32{}
	for _, r := range tb.KernelRoutes() {
		groups[r.Key.Dst.String()] = r.nhg
	}
	if g := groups["192.0.2.128/25"]; g == 0 || g != groups["203.0.113.0/24"] {
		t.Errorf("nexthop groups %v: want one shared by the routes resolved to %v and the direct one", groups, gw4a)
	}
}

// TestPrivilegedRecursiveNextHopLoopRefused: a gateway reachable only
// through the route that uses it does not resolve (the route would point
// at itself); nor does one covered by a blackhole or only by a default
// route; a chain of recursive routes resolves to its end.
func TestPrivilegedRecursiveNextHopLoopRefused(t *testing.T) {
	tp := newTopo(t, "recloop")
	tb := newModeTable(t, tp, ModeNexthopGroups, WithNextHopResolution())
	self := route("10.255.0.0/16", 20, lo4a)
	viaDefault := route("198.51.100.0/24", 20, netip.MustParseAddr("100.64.0.1"))
	blackholed := route("203.0.113.0/24", 20, netip.MustParseAddr("10.99.0.1"))
	mustSet(t, tb, self, viaDefault, blackholed,
		route("0.0.0.0/0", 20, gw4a),
		Route{Key: RouteKey{Dst: netip.MustParsePrefix("10.99.0.0/16"), Priority: 20}, Type: Blackhole})
	mustApply(t, tb)
	for _, dst := range []string{"10.255.0.0/16", "198.51.100.0/24", "203.0.113.0/24"} {
		wantGateways(t, tp, dst)
	}
	if un := tb.Unresolved(); len(un) != 3 {
		t.Errorf("Unresolved() = %+v, want the 3 routes", un)
	}
	// A less specific route breaks the loop: the route resolves through
	// it, and so does a chain (10.77.0.1 -> 10.255.0.2 -> 192.0.2.3).
	chain := route("10.66.0.0/16", 20, netip.MustParseAddr("10.77.0.1"))
	mustSet(t, tb, route("10.0.0.0/8", 20, gw4b), chain, route("10.77.0.0/24", 20, lo4a))
	mustApply(t, tb)
	wantGateways(t, tp, "10.255.0.0/16", "192.0.2.3@a1")
	wantGateways(t, tp, "10.66.0.0/16", "192.0.2.3@a1")
}

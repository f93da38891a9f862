package fib

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// topo is a router namespace with two veth links to a peer namespace:
//
//	r a0 192.0.2.0/31 2001:db8::/127   —  p0 192.0.2.1 2001:db8::1   peer
//	r a1 192.0.2.2/31 2001:db8::2/127  —  p1 192.0.2.3 2001:db8::3
type topo struct {
	r, peer *ns.NS
	a0, a1  int // ifindexes in r
}

var (
	gw4a = netip.MustParseAddr("192.0.2.1")
	gw4b = netip.MustParseAddr("192.0.2.3")
	gw6a = netip.MustParseAddr("2001:db8::1")
	gw6b = netip.MustParseAddr("2001:db8::3")
)

func newTopo(t testing.TB, name string) *topo {
	t.Helper()
	tp := &topo{r: ns.NewT(t, name+"-r"), peer: ns.NewT(t, name+"-p")}
	for i, l := range []struct{ a, p, a4, p4, a6, p6 string }{
		{"a0", "p0", "192.0.2.0/31", "192.0.2.1/31", "2001:db8::/127", "2001:db8::1/127"},
		{"a1", "p1", "192.0.2.2/31", "192.0.2.3/31", "2001:db8::2/127", "2001:db8::3/127"},
	} {
		if err := ns.Veth(tp.r, l.a, tp.peer, l.p); err != nil {
			t.Fatal(err)
		}
		for _, a := range []struct {
			n    *ns.NS
			link string
			pfx  string
		}{{tp.r, l.a, l.a4}, {tp.r, l.a, l.a6}, {tp.peer, l.p, l.p4}, {tp.peer, l.p, l.p6}} {
			if err := a.n.AddAddr(a.link, netip.MustParsePrefix(a.pfx)); err != nil {
				t.Fatal(err)
			}
		}
		link, err := tp.r.Handle().LinkByName(l.a)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			tp.a0 = link.Attrs().Index
		} else {
			tp.a1 = link.Attrs().Index
		}
	}
	return tp
}

func route(dst string, metric int, nhs ...netip.Addr) Route {
	r := Route{Key: RouteKey{Table: MainTable, Dst: netip.MustParsePrefix(dst), Priority: metric}}
	for _, gw := range nhs {
		r.NextHops = append(r.NextHops, NextHop{Gateway: gw})
	}
	return r
}

func mustSet(t testing.TB, tb *Table, rs ...Route) {
	t.Helper()
	for _, r := range rs {
		if err := tb.SetRoute(r); err != nil {
			t.Fatal(err)
		}
	}
}

func mustApply(t testing.TB, tb *Table) {
	t.Helper()
	if err := tb.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !tb.InSync() {
		t.Fatalf("Apply returned nil but %d keys are pending", tb.Pending())
	}
}

// ipRoute is one route of `ip -j -d route show`.
type ipRoute struct {
	Dst      string                 `json:"dst"`
	Gateway  string                 `json:"gateway"`
	Via      *struct{ Host string } `json:"via"`
	Dev      string                 `json:"dev"`
	Protocol string                 `json:"protocol"`
	Metric   int                    `json:"metric"`
	Type     string                 `json:"type"`
	NextHops []struct {
		Gateway string                 `json:"gateway"`
		Via     *struct{ Host string } `json:"via"`
		Dev     string                 `json:"dev"`
		Weight  int                    `json:"weight"`
	} `json:"nexthops"`
}

// Numeric protocols and types as `ip -N` prints them.
const (
	protoKernel     = "2"
	protoStatic     = "4"
	typeBlackhole   = "6"
	typeUnreachable = "7"
)

// kernelRoutes lists the routes of the main table through iproute2, all
// protocols, so tests see foreign routes too.
func kernelRoutes(t testing.TB, n *ns.NS, family string) []ipRoute {
	t.Helper()
	// -N keeps protocols (and types) numeric: on this machine FRR's
	// rt_protos.d names 196 "static", which would make switchd's routes look
	// like the `proto static` (4) ones the tests add as foreign routes.
	out, err := n.Run(context.Background(), "ip", "-N", "-j", "-d", family, "route", "show", "table", "main")
	if err != nil {
		t.Fatal(err)
	}
	var rs []ipRoute
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("parse ip route output: %v\n%s", err, out)
	}
	return rs
}

func findRoutes(rs []ipRoute, dst string) []ipRoute {
	var out []ipRoute
	for _, r := range rs {
		if r.Dst == dst {
			out = append(out, r)
		}
	}
	return out
}

// gateways of an iproute2 route, sorted, as "gw@dev".
func gateways(r ipRoute) []string {
	var out []string
	if r.Gateway != "" {
		out = append(out, r.Gateway+"@"+r.Dev)
	}
	if r.Via != nil {
		out = append(out, r.Via.Host+"@"+r.Dev)
	}
	for _, nh := range r.NextHops {
		gw := nh.Gateway
		if nh.Via != nil {
			gw = nh.Via.Host
		}
		out = append(out, gw+"@"+nh.Dev)
	}
	slices.Sort(out)
	return out
}

func TestPrivilegedApplyInstallsRoutes(t *testing.T) {
	tp := newTopo(t, "install")
	tb := openKernel(t, tp.r).NewTable(MainTable)
	want := []Route{
		route("198.51.100.0/24", 0, gw4a),
		route("203.0.113.0/24", 20, gw4a, gw4b),
		route("2001:db8:100::/48", 0, gw6a),
		route("2001:db8:200::/48", 20, gw6a, gw6b),
		{Key: RouteKey{Dst: netip.MustParsePrefix("10.99.0.0/16")}, Type: Blackhole},
		{Key: RouteKey{Dst: netip.MustParsePrefix("2001:db8:dead::/48")}, Type: Unreachable},
		{Key: RouteKey{Dst: netip.MustParsePrefix("10.98.0.0/24")}, NextHops: []NextHop{{Ifindex: tp.a1}}},
	}
	weighted := route("10.97.0.0/24", 0, gw4a, gw4b)
	weighted.NextHops[0].Weight = 3
	want = append(want, weighted)
	mustSet(t, tb, want...)
	mustApply(t, tb)

	v4, v6 := kernelRoutes(t, tp.r, "-4"), kernelRoutes(t, tp.r, "-6")
	for _, c := range []struct {
		rs    []ipRoute
		dst   string
		proto string
		gws   []string
	}{
		{v4, "198.51.100.0/24", protoStr, []string{"192.0.2.1@a0"}},
		{v4, "203.0.113.0/24", protoStr, []string{"192.0.2.1@a0", "192.0.2.3@a1"}},
		{v6, "2001:db8:100::/48", protoStr, []string{"2001:db8::1@a0"}},
		{v6, "2001:db8:200::/48", protoStr, []string{"2001:db8::1@a0", "2001:db8::3@a1"}},
		{v4, "10.97.0.0/24", protoStr, []string{"192.0.2.1@a0", "192.0.2.3@a1"}},
	} {
		got := findRoutes(c.rs, c.dst)
		if len(got) != 1 {
			t.Fatalf("kernel has %d routes for %s, want 1: %+v", len(got), c.dst, got)
		}
		if got[0].Protocol != c.proto {
			t.Errorf("%s: protocol %q, want %q", c.dst, got[0].Protocol, c.proto)
		}
		if g := gateways(got[0]); !slices.Equal(g, c.gws) {
			t.Errorf("%s: next hops %v, want %v", c.dst, g, c.gws)
		}
	}
	if w := findRoutes(v4, "10.97.0.0/24")[0].NextHops; len(w) != 2 || w[0].Weight != 3 || w[1].Weight != 1 {
		t.Errorf("10.97.0.0/24 weights %+v, want 3 and 1", w)
	}
	if r := findRoutes(v4, "10.99.0.0/16"); len(r) != 1 || r[0].Type != typeBlackhole {
		t.Errorf("10.99.0.0/16 = %+v, want one blackhole route", r)
	}
	if r := findRoutes(v6, "2001:db8:dead::/48"); len(r) != 1 || r[0].Type != typeUnreachable {
		t.Errorf("2001:db8:dead::/48 = %+v, want one unreachable route", r)
	}
	if r := findRoutes(v4, "10.98.0.0/24"); len(r) != 1 || r[0].Dev != "a1" || r[0].Gateway != "" {
		t.Errorf("10.98.0.0/24 = %+v, want a direct route on a1", r)
	}

	// How this kernel dumps an IPv6 ECMP route (one RTA_MULTIPATH message
	// since 4.11, siblings before); mergeSiblings copes with both.
	raw, err := tp.r.Handle().RouteListFiltered(netlink.FAMILY_V6,
		&netlink.Route{Table: MainTable, Protocol: Protocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	for _, nr := range raw {
		if nr.Dst.String() == "2001:db8:200::/48" {
			t.Logf("IPv6 ECMP dump message: %d RTA_MULTIPATH next hops, gw %v", len(nr.MultiPath), nr.Gw)
		}
	}

	// The forwarding lookup agrees, for single-path and ECMP routes.
	for dst, wantAny := range map[string][]string{
		"198.51.100.7":    {"via 192.0.2.1 dev a0"},
		"203.0.113.7":     {"via 192.0.2.1 dev a0", "via 192.0.2.3 dev a1"},
		"2001:db8:100::7": {"via 2001:db8::1 dev a0"},
		"2001:db8:200::7": {"via 2001:db8::1 dev a0", "via 2001:db8::3 dev a1"},
		"10.98.0.7":       {"dev a1"},
	} {
		out, err := tp.r.Run(context.Background(), "ip", "route", "get", dst)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(wantAny, func(s string) bool { return strings.Contains(out, s) }) {
			t.Errorf("ip route get %s = %q, want one of %q", dst, out, wantAny)
		}
	}
	if out, err := tp.r.Run(context.Background(), "ip", "route", "get", "10.99.1.1"); err == nil {
		t.Errorf("ip route get into a blackhole succeeded: %s", out)
	}

	// A dump converts back to exactly the desired routes, so a table that
	// resyncs finds nothing to do.
	tb.QueueResync()
	mustApply(t, tb)
	if n := tb.Stats().RouteWrites(); n != uint64(len(want)) {
		t.Errorf("route writes after resync = %d, want %d (one per route)", n, len(want))
	}
	got := tb.KernelRoutes()
	if len(got) != len(want) {
		t.Fatalf("kernel view has %d routes, want %d: %v", len(got), len(want), got)
	}
	for _, d := range tb.Routes() {
		i := slices.IndexFunc(got, func(k Route) bool { return k.Key == d.Key })
		if i < 0 || !sameRoute(d, got[i]) {
			t.Errorf("desired %v, kernel view after dump %v", d, got[max(i, 0)])
		}
	}
	// Interfaces the kernel resolved are reported.
	for _, k := range got {
		for _, nh := range k.NextHops {
			if k.Type == Unicast && nh.Ifindex == 0 {
				t.Errorf("dumped %v lacks the resolved interface", k)
			}
		}
	}
}

func TestPrivilegedSecondApplyWritesNothing(t *testing.T) {
	tp := newTopo(t, "noop")
	tb := openKernel(t, tp.r).NewTable(MainTable)
	rs := []Route{route("198.51.100.0/24", 0, gw4a, gw4b), route("2001:db8:200::/48", 0, gw6b, gw6a)}
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	before := tb.Stats()
	if before.RouteWrites() != 2 {
		t.Fatalf("first Apply wrote %d routes, want 2", before.RouteWrites())
	}
	// Setting the same routes again (paths in another order) and applying
	// twice, once with a resync, sends nothing.
	slices.Reverse(rs[0].NextHops)
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	tb.QueueResync()
	mustApply(t, tb)
	if got := tb.Stats().Writes(); got != before.Writes() {
		t.Errorf("writes = %d after re-applying the same state, want %d", got, before.Writes())
	}
}

func TestPrivilegedDeleteRouteSparesForeignRoutes(t *testing.T) {
	tp := newTopo(t, "foreign")
	ctx := context.Background()
	tb := openKernel(t, tp.r).NewTable(MainTable)
	mustSet(t, tb, route("198.51.100.0/24", 10, gw4a), route("2001:db8:100::/48", 10, gw6a))
	mustApply(t, tb)
	// Same prefixes, other protocol and metric: someone else's routes.
	for _, argv := range [][]string{
		{"ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.3", "proto", "static", "metric", "20"},
		{"ip", "-6", "route", "add", "2001:db8:100::/48", "via", "2001:db8::3", "proto", "static", "metric", "20"},
		{"ip", "route", "add", "10.50.0.0/24", "via", "192.0.2.3", "proto", "static"},
	} {
		if _, err := tp.r.Run(ctx, argv...); err != nil {
			t.Fatal(err)
		}
	}
	foreignThere := func(when string) {
		t.Helper()
		for _, c := range []struct{ fam, dst string }{{"-4", "198.51.100.0/24"}, {"-6", "2001:db8:100::/48"}, {"-4", "10.50.0.0/24"}, {"-4", "192.0.2.0/31"}} {
			rs := findRoutes(kernelRoutes(t, tp.r, c.fam), c.dst)
			if !slices.ContainsFunc(rs, func(r ipRoute) bool { return r.Protocol == protoStatic || r.Protocol == protoKernel }) {
				t.Errorf("%s: foreign route %s is gone: %+v", when, c.dst, rs)
			}
		}
	}
	tb.QueueResync()
	mustApply(t, tb)
	if n := len(tb.KernelRoutes()); n != 2 {
		t.Errorf("kernel view after resync has %d routes, want our 2: %v", n, tb.KernelRoutes())
	}
	foreignThere("after resync")

	tb.DeleteRoute(RouteKey{Dst: netip.MustParsePrefix("198.51.100.0/24"), Priority: 10})
	tb.DeleteRoute(RouteKey{Dst: netip.MustParsePrefix("2001:db8:100::/48"), Priority: 10})
	mustApply(t, tb)
	if got := tb.Stats().Deletes; got != 2 {
		t.Errorf("deletes = %d, want 2", got)
	}
	for _, c := range []struct{ fam, dst string }{{"-4", "198.51.100.0/24"}, {"-6", "2001:db8:100::/48"}} {
		for _, r := range findRoutes(kernelRoutes(t, tp.r, c.fam), c.dst) {
			if r.Protocol == protoStr {
				t.Errorf("our route %s survived DeleteRoute: %+v", c.dst, r)
			}
		}
	}
	foreignThere("after delete")
	// A table with nothing desired sweeps only its own routes.
	tb.QueueResync()
	mustApply(t, tb)
	foreignThere("after a sweep")
}

func TestPrivilegedForeignRouteAtSameKeyIsNotReplaced(t *testing.T) {
	tp := newTopo(t, "samekey")
	ctx := context.Background()
	if _, err := tp.r.Run(ctx, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.3", "proto", "static", "metric", "10"); err != nil {
		t.Fatal(err)
	}
	// No backoff: the test retries at once.
	tb := openKernel(t, tp.r).NewTable(MainTable, WithBackoff(0, 0))
	r := route("198.51.100.0/24", 10, gw4a)
	mustSet(t, tb, r)
	// The first failure queues a resync; the second knows the key is not ours.
	for i := range 2 {
		err := tb.Apply(ctx)
		if err == nil || !strings.Contains(err.Error(), "198.51.100.0/24") {
			t.Fatalf("Apply %d = %v, want an error naming 198.51.100.0/24", i, err)
		}
		if i == 1 && !errors.Is(err, ErrNotOwner) {
			t.Errorf("second Apply = %v, want ErrNotOwner", err)
		}
	}
	if got := tb.Stats().Resyncs; got != 2 {
		t.Errorf("resyncs = %d, want 2 (start, and one after the first conflict)", got)
	}
	rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24")
	if len(rs) != 1 || rs[0].Protocol != protoStatic || rs[0].Gateway != "192.0.2.3" {
		t.Fatalf("foreign route changed: %+v", rs)
	}
	if _, err := tp.r.Run(ctx, "ip", "route", "del", "198.51.100.0/24", "proto", "static", "metric", "10"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, tb)
	rs = findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24")
	if len(rs) != 1 || rs[0].Protocol != protoStr {
		t.Fatalf("after the foreign route left: %+v, want ours", rs)
	}
}

func TestPrivilegedResyncRestoresDeletedRoute(t *testing.T) {
	tp := newTopo(t, "restore")
	ctx := context.Background()
	tb := openKernel(t, tp.r).NewTable(MainTable)
	mustSet(t, tb, route("198.51.100.0/24", 0, gw4a, gw4b), route("2001:db8:100::/48", 0, gw6a, gw6b))
	mustApply(t, tb)
	for _, argv := range [][]string{
		{"ip", "route", "del", "198.51.100.0/24"},
		{"ip", "-6", "route", "del", "2001:db8:100::/48"},
	} {
		if _, err := tp.r.Run(ctx, argv...); err != nil {
			t.Fatal(err)
		}
	}
	// Without a resync the table does not know.
	mustApply(t, tb)
	if n := len(findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24")); n != 0 {
		t.Fatalf("route back without a resync?")
	}
	tb.QueueResync()
	mustApply(t, tb)
	for _, c := range []struct {
		fam, dst string
		gws      []string
	}{
		{"-4", "198.51.100.0/24", []string{"192.0.2.1@a0", "192.0.2.3@a1"}},
		{"-6", "2001:db8:100::/48", []string{"2001:db8::1@a0", "2001:db8::3@a1"}},
	} {
		rs := findRoutes(kernelRoutes(t, tp.r, c.fam), c.dst)
		if len(rs) != 1 || rs[0].Protocol != protoStr || !slices.Equal(gateways(rs[0]), c.gws) {
			t.Errorf("%s after resync: %+v, want ours via %v", c.dst, rs, c.gws)
		}
	}
}

func TestPrivilegedUnreachableGatewayStaysPending(t *testing.T) {
	tp := newTopo(t, "pending")
	ctx := context.Background()
	now := time.Now()
	tb := openKernel(t, tp.r).NewTable(MainTable, withClock(func() time.Time { return now }))
	ok := route("198.51.100.0/24", 0, gw4a)
	far4 := route("203.0.113.0/24", 0, netip.MustParseAddr("100.64.0.1"))
	far6 := route("2001:db8:300::/48", 0, netip.MustParseAddr("2001:db8:ff::1"))
	mustSet(t, tb, ok, far4, far6)
	err := tb.Apply(ctx)
	if err == nil {
		t.Fatal("Apply succeeded with unreachable gateways")
	}
	for _, s := range []string{"203.0.113.0/24", "2001:db8:300::/48"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Apply error %q does not name %s", err, s)
		}
	}
	if strings.Contains(err.Error(), "198.51.100.0/24") {
		t.Errorf("Apply error %q names the route that worked", err)
	}
	if tb.InSync() || tb.Pending() != 2 {
		t.Errorf("InSync=%v Pending=%d, want false and 2", tb.InSync(), tb.Pending())
	}
	if len(findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24")) != 1 {
		t.Error("the reachable route was not installed")
	}
	// The failures are visible per route.
	errs := tb.Errors()
	if len(errs) != 2 || errs[0].Key.Dst != far4.Key.Dst || errs[0].Err == nil || errs[0].Attempts != 1 {
		t.Errorf("Errors() = %+v, want the two unreachable routes", errs)
	}
	if tb.RouteErr(far6.Key) == nil || tb.RouteErr(ok.Key) != nil {
		t.Errorf("RouteErr: far6 %v, ok %v", tb.RouteErr(far6.Key), tb.RouteErr(ok.Key))
	}
	// Apply again at once: the failed routes wait for their backoff, no
	// busy loop, but the error says so.
	// (With nexthop groups an unresolvable next hop is never sent: the
	// attempts show as failures, not as writes.)
	writes, fails := tb.Stats().RouteWrites(), tb.Stats().Failures
	if err := tb.Apply(ctx); err == nil {
		t.Fatal("Apply during backoff returned nil with failed routes pending")
	}
	if got := tb.Stats().RouteWrites() - writes; got != 0 || tb.Stats().Failures != fails {
		t.Errorf("Apply during backoff sent %d writes (%d failures), want nothing attempted", got, tb.Stats().Failures-fails)
	}
	// Retried once the backoff passed, still failing, and the good route
	// is not rewritten.
	now = now.Add(time.Second)
	if err := tb.Apply(ctx); err == nil {
		t.Fatal("second Apply succeeded with unreachable gateways")
	}
	if got := tb.Stats().Failures - fails; got != 2 || tb.Stats().RouteWrites() != writes {
		t.Errorf("retry: %d failures, %d route writes, want 2 failures (only the pending routes) and no write sent", got, tb.Stats().RouteWrites()-writes)
	}
	if e := tb.Errors(); len(e) != 2 || e[0].Attempts != 2 || !e[0].NextRetry.After(now.Add(150*time.Millisecond)) {
		t.Errorf("after the second failure: %+v, want attempts 2 and a longer backoff", e)
	}
	now = now.Add(time.Minute)
	if err := tp.r.AddAddr("a0", netip.MustParsePrefix("100.64.0.0/31")); err != nil {
		t.Fatal(err)
	}
	if err := tp.r.AddAddr("a1", netip.MustParsePrefix("2001:db8:ff::/127")); err != nil {
		t.Fatal(err)
	}
	mustApply(t, tb)
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "203.0.113.0/24"); len(rs) != 1 || !slices.Equal(gateways(rs[0]), []string{"100.64.0.1@a0"}) {
		t.Errorf("203.0.113.0/24 = %+v", rs)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-6"), "2001:db8:300::/48"); len(rs) != 1 || !slices.Equal(gateways(rs[0]), []string{"2001:db8:ff::1@a1"}) {
		t.Errorf("2001:db8:300::/48 = %+v", rs)
	}
}

func TestPrivilegedChangeNextHopsReplaces(t *testing.T) {
	for _, mode := range []string{ModeNexthopGroups, ModeMultipath} {
		t.Run(mode, func(t *testing.T) { testChangeNextHops(t, mode) })
	}
}

// testChangeNextHops changes the paths of two routes. Inline next hops
// take one replace per route; with nexthop groups each route is the only
// user of its group, so the group is rewritten and no route is.
func testChangeNextHops(t *testing.T, mode string) {
	tp := newTopo(t, "change")
	tb := newModeTable(t, tp, mode)
	steps := []struct {
		r4, r6   Route
		gw4, gw6 []string
	}{
		{route("198.51.100.0/24", 0, gw4a), route("2001:db8:100::/48", 0, gw6a),
			[]string{"192.0.2.1@a0"}, []string{"2001:db8::1@a0"}},
		{route("198.51.100.0/24", 0, gw4a, gw4b), route("2001:db8:100::/48", 0, gw6a, gw6b),
			[]string{"192.0.2.1@a0", "192.0.2.3@a1"}, []string{"2001:db8::1@a0", "2001:db8::3@a1"}},
		{route("198.51.100.0/24", 0, gw4b), route("2001:db8:100::/48", 0, gw6b),
			[]string{"192.0.2.3@a1"}, []string{"2001:db8::3@a1"}},
	}
	for i, s := range steps {
		before := tb.Stats()
		mustSet(t, tb, s.r4, s.r6)
		mustApply(t, tb)
		after := tb.Stats()
		w := after.RouteWrites() - before.RouteWrites()
		switch {
		case i == 0 && w != 2:
			t.Errorf("step %d: %d route writes, want 2 (one per route)", i, w)
		case i > 0 && mode == ModeMultipath && (after.Replaces-before.Replaces != 2 || w != 2):
			t.Errorf("step %d: stats %+v -> %+v, want two replaces and no deletes", i, before, after)
		case i > 0 && mode == ModeNexthopGroups && (w != 0 || after.InPlace-before.InPlace != 2):
			t.Errorf("step %d: stats %+v -> %+v, want no route writes, two routes changed by their groups", i, before, after)
		}
		for _, c := range []struct {
			fam, dst string
			gws      []string
		}{{"-4", "198.51.100.0/24", s.gw4}, {"-6", "2001:db8:100::/48", s.gw6}} {
			rs := findRoutes(kernelRoutes(t, tp.r, c.fam), c.dst)
			if len(rs) != 1 || !slices.Equal(gateways(rs[0]), c.gws) {
				t.Errorf("step %d: %s = %+v, want one route via %v", i, c.dst, rs, c.gws)
			}
		}
	}
	// The kernel agrees with the table's view.
	writes := tb.Stats().Writes()
	tb.QueueResync()
	mustApply(t, tb)
	if w := tb.Stats().Writes() - writes; w != 0 {
		t.Errorf("resync after the changes wrote %d times, want 0", w)
	}
}

// newModeTable is a Table on tp's router writing in the given mode, on a
// Kernel of its own.
func newModeTable(t testing.TB, tp *topo, mode string, opts ...Opt) *Table {
	t.Helper()
	return newKernelTable(t, openKernel(t, tp.r), MainTable, mode, opts...)
}

// newKernelTable is a Table of k writing in the given mode.
func newKernelTable(t testing.TB, k *Kernel, table int, mode string, opts ...Opt) *Table {
	t.Helper()
	switch mode {
	case ModeMultipath:
		opts = append(opts, WithoutNexthopObjects())
	case ModeSerial:
		opts = append(opts, WithSerialWriter())
	}
	tb := k.NewTable(table, opts...)
	t.Cleanup(tb.Close)
	if tb.Mode() != mode {
		t.Fatalf("table mode %q, want %q", tb.Mode(), mode)
	}
	return tb
}

// openKernel opens a Kernel on n, closed when the test ends (after the
// Tables and Monitors made from it, whose cleanups run first).
func openKernel(t testing.TB, n *ns.NS, opts ...Opt) *Kernel {
	t.Helper()
	k, err := Open(n.Net(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func TestPrivilegedNewTableAdoptsRoutes(t *testing.T) {
	tp := newTopo(t, "adopt")
	rs := []Route{
		route("198.51.100.0/24", 0, gw4a, gw4b),
		route("2001:db8:100::/48", 0, gw6a, gw6b),
		route("2001:db8:200::/48", 0, gw6b),
		{Key: RouteKey{Dst: netip.MustParsePrefix("10.99.0.0/16")}, Type: Blackhole},
	}
	first := openKernel(t, tp.r).NewTable(MainTable)
	mustSet(t, first, rs...)
	mustApply(t, first)

	// A restarted switchd: new Kernel and Table, same namespace, same
	// desired routes.
	second := openKernel(t, tp.r).NewTable(MainTable)
	mustSet(t, second, rs...)
	mustApply(t, second)
	if w := second.Stats().Writes(); w != 0 {
		t.Errorf("restarted table wrote %d times for unchanged routes, want 0", w)
	}
	if n := len(second.KernelRoutes()); n != len(rs) {
		t.Errorf("restarted table adopted %d routes, want %d: %v", n, len(rs), second.KernelRoutes())
	}
	// One route fewer: exactly that one is swept.
	third := openKernel(t, tp.r).NewTable(MainTable)
	mustSet(t, third, rs[:3]...)
	mustApply(t, third)
	if s := third.Stats(); s.Writes() != 1 || s.Deletes != 1 {
		t.Errorf("stats %+v, want exactly one delete", s)
	}
	if r := findRoutes(kernelRoutes(t, tp.r, "-4"), "10.99.0.0/16"); len(r) != 0 {
		t.Errorf("undesired route not swept: %+v", r)
	}
}

func TestPrivilegedIPv4RouteViaIPv6Gateway(t *testing.T) {
	tp := newTopo(t, "via6")
	tb := openKernel(t, tp.r).NewTable(MainTable)
	single := route("198.51.100.0/24", 0, gw6a)
	multi := route("203.0.113.0/24", 0, gw6a, gw6b)
	ll := Route{Key: RouteKey{Dst: netip.MustParsePrefix("192.0.2.128/25")},
		NextHops: []NextHop{{Gateway: netip.MustParseAddr("fe80::1"), Ifindex: tp.a0}}}
	mustSet(t, tb, single, multi, ll)
	mustApply(t, tb)
	v4 := kernelRoutes(t, tp.r, "-4")
	for dst, gws := range map[string][]string{
		"198.51.100.0/24": {"2001:db8::1@a0"},
		"203.0.113.0/24":  {"2001:db8::1@a0", "2001:db8::3@a1"},
		"192.0.2.128/25":  {"fe80::1@a0"},
	} {
		rs := findRoutes(v4, dst)
		if len(rs) != 1 || !slices.Equal(gateways(rs[0]), gws) {
			t.Errorf("%s = %+v, want via inet6 %v", dst, rs, gws)
		}
	}
	tb.QueueResync()
	mustApply(t, tb)
	if w := tb.Stats().RouteWrites(); w != 3 {
		t.Errorf("route writes = %d, want 3: the dump must read RTA_VIA back as the same route", w)
	}
}

// protoStr is switchd's route protocol as iproute2 prints it with -N.
var protoStr = strconv.Itoa(Protocol)

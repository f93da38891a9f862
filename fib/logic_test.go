package fib

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	pfx = netip.MustParsePrefix
	ip  = netip.MustParseAddr
)

func ipnet(s string) *net.IPNet {
	p := pfx(s)
	return prefixToIPNet(p)
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		name string
		in   Route
		want Route
	}{{
		name: "defaults, masking, sorting, weights",
		in: Route{Key: RouteKey{Dst: pfx("10.1.2.3/16")}, NextHops: []NextHop{
			{Gateway: ip("192.0.2.3"), Weight: 2}, {Gateway: ip("192.0.2.1")}}},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("10.1.0.0/16")}, Type: Unicast, NextHops: []NextHop{
			{Gateway: ip("192.0.2.1"), Weight: 1}, {Gateway: ip("192.0.2.3"), Weight: 2}}},
	}, {
		name: "IPv6 metric 0 is the kernel's 1024",
		in:   Route{Key: RouteKey{Dst: pfx("2001:db8::/32")}, NextHops: []NextHop{{Gateway: ip("2001:db8::1")}}},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("2001:db8::/32"), Priority: 1024}, Type: Unicast,
			NextHops: []NextHop{{Gateway: ip("2001:db8::1"), Weight: 1}}},
	}, {
		name: "single path drops its weight",
		in:   Route{Key: RouteKey{Table: 100, Dst: pfx("10.0.0.0/8"), Priority: 5}, NextHops: []NextHop{{Gateway: ip("192.0.2.1"), Weight: 7}}},
		want: Route{Key: RouteKey{Table: 100, Dst: pfx("10.0.0.0/8"), Priority: 5}, Type: Unicast,
			NextHops: []NextHop{{Gateway: ip("192.0.2.1"), Weight: 1}}},
	}, {
		name: "duplicate paths collapse, then the single one loses its weight",
		in: Route{Key: RouteKey{Dst: pfx("10.0.0.0/8")}, NextHops: []NextHop{
			{Gateway: ip("192.0.2.1"), Weight: 3}, {Gateway: ip("192.0.2.1"), Weight: 3}}},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("10.0.0.0/8")}, Type: Unicast,
			NextHops: []NextHop{{Gateway: ip("192.0.2.1"), Weight: 1}}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			c.in.Normalize()
			if !c.in.Equal(c.want) {
				t.Errorf("got  %v %+v\nwant %v %+v", c.in, c.in, c.want, c.want)
			}
		})
	}
}

// TestFromNetlink checks the conversion of what a dump delivers, in the
// shapes the kernel uses.
func TestFromNetlink(t *testing.T) {
	for _, c := range []struct {
		name string
		in   netlink.Route
		want Route
	}{{
		name: "IPv4 single path",
		in: netlink.Route{Family: unix.AF_INET, Dst: ipnet("198.51.100.0/24"), Gw: net.ParseIP("192.0.2.1").To4(),
			LinkIndex: 3, Table: MainTable, Protocol: Protocol, Type: unix.RTN_UNICAST},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("198.51.100.0/24")}, Type: Unicast,
			NextHops: []NextHop{{Gateway: ip("192.0.2.1"), Ifindex: 3, Weight: 1}}},
	}, {
		name: "IPv6 multipath, rtnh_hops is weight-1",
		in: netlink.Route{Family: unix.AF_INET6, Dst: ipnet("2001:db8:1::/48"), Priority: 1024, Table: MainTable, Type: unix.RTN_UNICAST,
			MultiPath: []*netlink.NexthopInfo{
				{Gw: net.ParseIP("2001:db8::3"), LinkIndex: 4, Hops: 0},
				{Gw: net.ParseIP("2001:db8::1"), LinkIndex: 3, Hops: 2},
			}},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("2001:db8:1::/48"), Priority: 1024}, Type: Unicast,
			NextHops: []NextHop{{Gateway: ip("2001:db8::1"), Ifindex: 3, Weight: 3}, {Gateway: ip("2001:db8::3"), Ifindex: 4, Weight: 1}}},
	}, {
		name: "IPv4 via an IPv6 gateway (RTA_VIA)",
		in: netlink.Route{Family: unix.AF_INET, Dst: ipnet("10.0.0.0/8"), LinkIndex: 3, Table: MainTable, Type: unix.RTN_UNICAST,
			Via: &netlink.Via{AddrFamily: netlink.FAMILY_V6, Addr: net.ParseIP("fe80::1")}},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("10.0.0.0/8")}, Type: Unicast,
			NextHops: []NextHop{{Gateway: ip("fe80::1"), Ifindex: 3, Weight: 1}}},
	}, {
		name: "IPv6 blackhole is reported on lo; that is not a next hop",
		in:   netlink.Route{Family: unix.AF_INET6, Dst: ipnet("2001:db8:dead::/48"), LinkIndex: 1, Priority: 1024, Table: MainTable, Type: unix.RTN_BLACKHOLE},
		want: Route{Key: RouteKey{Table: MainTable, Dst: pfx("2001:db8:dead::/48"), Priority: 1024}, Type: Blackhole},
	}, {
		name: "direct route, table above 255, TOS",
		in:   netlink.Route{Family: unix.AF_INET, Dst: ipnet("10.9.0.0/24"), LinkIndex: 7, Scope: netlink.SCOPE_LINK, Table: 1000, Tos: 8, Priority: 9, Type: unix.RTN_UNICAST},
		want: Route{Key: RouteKey{Table: 1000, Dst: pfx("10.9.0.0/24"), TOS: 8, Priority: 9}, Type: Unicast,
			NextHops: []NextHop{{Ifindex: 7, Weight: 1}}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			got, err := fromNetlink(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(c.want) {
				t.Errorf("got  %v %+v\nwant %v %+v", got, got, c.want, c.want)
			}
		})
	}
}

// TestNetlinkRoundTrip renders routes as requests and reads them back as a
// dump would deliver them (the kernel adds resolved interfaces only).
func TestNetlinkRoundTrip(t *testing.T) {
	for _, r := range []Route{
		{Key: RouteKey{Dst: pfx("10.0.0.0/8"), Priority: 20}, NextHops: []NextHop{{Gateway: ip("192.0.2.1"), Ifindex: 2}, {Gateway: ip("192.0.2.3"), Ifindex: 3, Weight: 256}}},
		{Key: RouteKey{Dst: pfx("10.0.0.0/8")}, NextHops: []NextHop{{Gateway: ip("2001:db8::1"), Ifindex: 2}, {Gateway: ip("192.0.2.3"), Ifindex: 3}}},
		{Key: RouteKey{Dst: pfx("2001:db8::/32"), Table: 300}, NextHops: []NextHop{{Gateway: ip("2001:db8::1"), Ifindex: 2}}},
		{Key: RouteKey{Dst: pfx("0.0.0.0/0")}, Type: Unreachable},
		{Key: RouteKey{Dst: pfx("10.1.0.0/16")}, NextHops: []NextHop{{Ifindex: 5}}},
	} {
		r.Normalize()
		nr := toNetlink(r, Protocol)
		if int(nr.Protocol) != Protocol {
			t.Errorf("%v: protocol %d", r, nr.Protocol)
		}
		nr.Family = unix.AF_INET
		if r.Key.Dst.Addr().Is6() {
			nr.Family = unix.AF_INET6
		}
		back, err := fromNetlink(*nr)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Equal(r) {
			t.Errorf("round trip of %v gave %v", r, back)
		}
	}
}

func TestSameRoute(t *testing.T) {
	want := route("10.0.0.0/8", 0, ip("192.0.2.1"), ip("192.0.2.3"))
	want.Normalize()
	have := want
	have.NextHops = []NextHop{{Gateway: ip("192.0.2.1"), Ifindex: 2, Weight: 1}, {Gateway: ip("192.0.2.3"), Ifindex: 3, Weight: 1}}
	if !sameRoute(want, have) {
		t.Error("a desired route without interfaces does not match the kernel's resolved ones")
	}
	pinned := have
	pinned.NextHops = []NextHop{{Gateway: ip("192.0.2.1"), Ifindex: 9, Weight: 1}, {Gateway: ip("192.0.2.3"), Ifindex: 3, Weight: 1}}
	if sameRoute(pinned, have) {
		t.Error("a desired interface matches another one")
	}
	heavier := have
	heavier.NextHops = []NextHop{{Gateway: ip("192.0.2.1"), Ifindex: 2, Weight: 2}, {Gateway: ip("192.0.2.3"), Ifindex: 3, Weight: 1}}
	if sameRoute(want, heavier) {
		t.Error("weights are ignored")
	}
	other := have
	other.Key.Priority = 5
	if sameRoute(want, other) {
		t.Error("metric is ignored")
	}
}

func TestMergeSiblings(t *testing.T) {
	k := RouteKey{Table: MainTable, Dst: pfx("2001:db8:1::/48"), Priority: 1024}
	in := []Route{
		{Key: k, Type: Unicast, NextHops: []NextHop{{Gateway: ip("2001:db8::3"), Ifindex: 4, Weight: 1}}},
		{Key: RouteKey{Table: MainTable, Dst: pfx("2001:db8:2::/48"), Priority: 1024}, Type: Blackhole},
		{Key: k, Type: Unicast, NextHops: []NextHop{{Gateway: ip("2001:db8::1"), Ifindex: 3, Weight: 1}}},
	}
	got := mergeSiblings(in)
	if len(got) != 2 {
		t.Fatalf("got %d routes, want 2: %v", len(got), got)
	}
	want := Route{Key: k, Type: Unicast, NextHops: []NextHop{{Gateway: ip("2001:db8::1"), Ifindex: 3, Weight: 1}, {Gateway: ip("2001:db8::3"), Ifindex: 4, Weight: 1}}}
	if !got[0].Equal(want) {
		t.Errorf("merged %v, want %v", got[0], want)
	}
}

func TestSetRouteRejectsBadInput(t *testing.T) {
	good := NextHop{Gateway: ip("192.0.2.1")}
	for _, c := range []struct {
		name string
		r    Route
		msg  string
	}{
		{"no prefix", Route{NextHops: []NextHop{good}}, "no destination"},
		{"mapped prefix", Route{Key: RouteKey{Dst: pfx("::ffff:10.0.0.0/104")}, NextHops: []NextHop{good}}, "IPv4-mapped"},
		{"unicast without paths", Route{Key: RouteKey{Dst: pfx("10.0.0.0/8")}}, "without next hops"},
		{"blackhole with paths", Route{Key: RouteKey{Dst: pfx("10.0.0.0/8")}, Type: Blackhole, NextHops: []NextHop{good}}, "with next hops"},
		{"unknown type", Route{Key: RouteKey{Dst: pfx("10.0.0.0/8")}, Type: 42}, "type 42"},
		{"weight", Route{Key: RouteKey{Dst: pfx("10.0.0.0/8")}, NextHops: []NextHop{{Gateway: ip("192.0.2.1"), Weight: 257}}}, "weight"},
		{"empty hop", Route{Key: RouteKey{Dst: pfx("10.0.0.0/8")}, NextHops: []NextHop{{}}}, "neither gateway nor interface"},
		{"v4 gw for v6", Route{Key: RouteKey{Dst: pfx("2001:db8::/32")}, NextHops: []NextHop{good}}, "IPv4 gateway for an IPv6 route"},
		{"link-local without if", Route{Key: RouteKey{Dst: pfx("2001:db8::/32")}, NextHops: []NextHop{{Gateway: ip("fe80::1")}}}, "needs an interface"},
		{"zone", Route{Key: RouteKey{Dst: pfx("2001:db8::/32")}, NextHops: []NextHop{{Gateway: ip("fe80::1%eth0"), Ifindex: 2}}}, "zone"},
		{"other table", Route{Key: RouteKey{Table: 100, Dst: pfx("10.0.0.0/8")}, NextHops: []NextHop{good}}, "table 100 is not this table"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeDataplane{}
			tb := newTable(MainTable, withDataplane(fake))
			err := tb.SetRoute(c.r)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("SetRoute(%v) = %v, want an error containing %q", c.r, err, c.msg)
			}
			if len(tb.Routes()) != 0 || !tb.InSync() {
				t.Errorf("rejected route changed the desired set: %v", tb.Routes())
			}
		})
	}
}

// fakeDataplane records writes and fails the routes it is told to.
type fakeDataplane struct {
	noGroups
	kernel []Route
	fail   map[netip.Prefix]error
	ops    []string
	lists  int
}

func (f *fakeDataplane) list(ctx context.Context, table, protocol int, _ *foreignSink) ([]Route, error) {
	f.lists++
	return slices.Clone(f.kernel), nil
}

func (f *fakeDataplane) write(ctx context.Context, ops []op, protocol int, _ batchControl) ([]error, int) {
	errs := make([]error, len(ops))
	for i, o := range ops {
		f.ops = append(f.ops, fmt.Sprintf("%v %v", o.kind, o.route.Key.Dst))
		errs[i] = f.fail[o.route.Key.Dst]
	}
	return errs, 0
}

// TestApplyPlan checks what Apply sends, and in which order, from a known
// kernel state: deletes first, then adds for new keys and replaces for keys
// the kernel holds, each in key order; failures stay pending.
func TestApplyPlan(t *testing.T) {
	kr := func(dst string, gw string) Route {
		r := route(dst, 0, ip(gw))
		r.NextHops[0].Ifindex = 2 // as the kernel reports it
		r.Normalize()
		return r
	}
	for _, c := range []struct {
		name    string
		kernel  []Route
		desired []Route
		fail    map[netip.Prefix]error
		ops     []string
		pending int
	}{{
		name:    "empty kernel: adds in key order",
		desired: []Route{route("10.2.0.0/16", 0, ip("192.0.2.1")), route("10.1.0.0/16", 0, ip("192.0.2.1"))},
		ops:     []string{"add 10.1.0.0/16", "add 10.2.0.0/16"},
	}, {
		name:    "adopted routes equal to desired: nothing",
		kernel:  []Route{kr("10.1.0.0/16", "192.0.2.1")},
		desired: []Route{route("10.1.0.0/16", 0, ip("192.0.2.1"))},
	}, {
		name:    "changed, stale and new",
		kernel:  []Route{kr("10.1.0.0/16", "192.0.2.1"), kr("10.3.0.0/16", "192.0.2.1"), kr("10.0.0.0/16", "192.0.2.1")},
		desired: []Route{route("10.1.0.0/16", 0, ip("192.0.2.3")), route("10.2.0.0/16", 0, ip("192.0.2.1"))},
		ops:     []string{"delete 10.0.0.0/16", "delete 10.3.0.0/16", "replace 10.1.0.0/16", "add 10.2.0.0/16"},
	}, {
		name:    "a failure stays pending",
		desired: []Route{route("10.1.0.0/16", 0, ip("192.0.2.1")), route("10.2.0.0/16", 0, ip("192.0.2.1"))},
		fail:    map[netip.Prefix]error{pfx("10.1.0.0/16"): unix.ENETUNREACH},
		ops:     []string{"add 10.1.0.0/16", "add 10.2.0.0/16"},
		pending: 1,
	}} {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeDataplane{kernel: c.kernel, fail: c.fail}
			now := time.Unix(1000, 0)
			tb := newTable(MainTable, withDataplane(fake), withClock(func() time.Time { return now }))
			mustSet(t, tb, c.desired...)
			err := tb.Apply(context.Background())
			if (err != nil) != (c.pending > 0) {
				t.Errorf("Apply = %v, want error: %v", err, c.pending > 0)
			}
			if !slices.Equal(fake.ops, c.ops) {
				t.Errorf("ops\n got %q\nwant %q", fake.ops, c.ops)
			}
			if tb.Pending() != c.pending {
				t.Errorf("pending = %d, want %d", tb.Pending(), c.pending)
			}
			// Once the failure clears, the retry sends only what failed,
			// and not before its backoff has passed.
			fake.ops, fake.fail = nil, nil
			if err := tb.Apply(context.Background()); (err != nil) != (c.pending > 0) || len(fake.ops) != 0 {
				t.Errorf("Apply during backoff = %v and sent %q, want an error only for waiting routes and nothing sent", err, fake.ops)
			}
			now = now.Add(time.Second)
			if err := tb.Apply(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(fake.ops) != c.pending || !tb.InSync() {
				t.Errorf("retry sent %q, want %d ops and InSync", fake.ops, c.pending)
			}
			if fake.lists != 1 {
				t.Errorf("dumped %d times, want once (the first Apply)", fake.lists)
			}
		})
	}
}

func TestApplyErrorNamesRoute(t *testing.T) {
	fake := &fakeDataplane{fail: map[netip.Prefix]error{pfx("10.1.0.0/16"): unix.ENETUNREACH, pfx("10.2.0.0/16"): unix.ENODEV}}
	tb := newTable(MainTable, withDataplane(fake))
	mustSet(t, tb, route("10.1.0.0/16", 0, ip("192.0.2.1")), route("10.2.0.0/16", 0, ip("192.0.2.1")))
	err := tb.Apply(context.Background())
	if !errors.Is(err, unix.ENETUNREACH) || !errors.Is(err, unix.ENODEV) {
		t.Errorf("Apply = %v, want both causes joined", err)
	}
	for _, s := range []string{"add route 10.1.0.0/16 via 192.0.2.1", "add route 10.2.0.0/16 via 192.0.2.1"} {
		if !strings.Contains(fmt.Sprint(err), s) {
			t.Errorf("Apply error %q lacks %q", err, s)
		}
	}
}

func TestResyncInterval(t *testing.T) {
	now := time.Unix(1000, 0)
	fake := &fakeDataplane{}
	tb := newTable(MainTable, withDataplane(fake), WithResyncInterval(time.Minute), withClock(func() time.Time { return now }))
	apply := func() {
		t.Helper()
		if err := tb.Apply(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	apply()
	if fake.lists != 1 || !tb.NextResync().Equal(now.Add(time.Minute)) {
		t.Fatalf("after the first Apply: %d dumps, next resync %v", fake.lists, tb.NextResync())
	}
	now = now.Add(59 * time.Second)
	apply()
	if fake.lists != 1 {
		t.Errorf("resynced before the interval passed")
	}
	now = now.Add(time.Second)
	apply()
	if fake.lists != 2 {
		t.Errorf("did not resync once the interval passed (%d dumps)", fake.lists)
	}
}

func TestOnRouteEvent(t *testing.T) {
	r := route("10.1.0.0/16", 0, ip("192.0.2.1"))
	r.Normalize()
	kernel := r
	kernel.NextHops = []NextHop{{Gateway: ip("192.0.2.1"), Ifindex: 2, Weight: 1}}
	fake := &fakeDataplane{kernel: []Route{kernel}}
	tb := newTable(MainTable, withDataplane(fake))
	mustSet(t, tb, r)
	mustApply(t, tb)

	tb.OnRouteEvent(RouteEvent{Route: kernel}) // an echo: nothing to do
	if !tb.InSync() {
		t.Fatal("an event matching the kernel view made the table pending")
	}
	tb.OnRouteEvent(RouteEvent{Deleted: true, Route: kernel})
	if tb.Pending() != 1 {
		t.Fatal("a deleted route of ours is not pending")
	}
	changed := kernel
	changed.NextHops = []NextHop{{Gateway: ip("192.0.2.3"), Ifindex: 3, Weight: 1}}
	tb.OnRouteEvent(RouteEvent{Route: changed})
	mustApply(t, tb)
	if want := []string{"replace 10.1.0.0/16"}; !slices.Equal(fake.ops, want) {
		t.Errorf("ops %q, want %q (the change is repaired by one replace)", fake.ops, want)
	}
	other := kernel
	other.Key.Table = 100
	tb.OnRouteEvent(RouteEvent{Deleted: true, Route: other})
	if !tb.InSync() {
		t.Error("an event for another table changed this one")
	}
}

func TestApplyCancelled(t *testing.T) {
	fake := &fakeDataplane{}
	tb := newTable(MainTable, withDataplane(cancelledWrites{fake}))
	mustSet(t, tb, route("10.1.0.0/16", 0, ip("192.0.2.1")), route("10.2.0.0/16", 0, ip("192.0.2.1")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := tb.Apply(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 writes not sent") {
		t.Errorf("Apply = %v, want one error counting the unsent writes", err)
	}
	if s := tb.Stats(); s.Writes() != 0 || s.Failures != 0 || tb.Pending() != 2 {
		t.Errorf("stats %+v pending %d: unsent writes must not count and must stay pending", s, tb.Pending())
	}
}

// cancelledWrites lists like the fake but sends nothing once ctx is done,
// as the netlink dataplane does.
type cancelledWrites struct{ *fakeDataplane }

func (c cancelledWrites) list(ctx context.Context, table, protocol int, sink *foreignSink) ([]Route, error) {
	return c.fakeDataplane.list(context.Background(), table, protocol, sink)
}

func (c cancelledWrites) write(ctx context.Context, ops []op, protocol int, _ batchControl) ([]error, int) {
	errs := make([]error, len(ops))
	for i := range ops {
		errs[i] = notSent{ctx.Err()}
	}
	return errs, 0
}

func TestPackedKeys(t *testing.T) {
	keys := []RouteKey{
		{Table: MainTable, Dst: pfx("0.0.0.0/0")},
		{Table: MainTable, Dst: pfx("10.0.0.0/8")},
		{Table: MainTable, Dst: pfx("10.0.0.0/16")},
		{Table: MainTable, Dst: pfx("10.0.0.0/16"), TOS: 8},
		{Table: MainTable, Dst: pfx("10.0.0.0/16"), TOS: 8, Priority: 20},
		{Table: MainTable, Dst: pfx("255.255.255.255/32"), Priority: 1 << 31},
		{Table: MainTable, Dst: pfx("::/0"), Priority: 1024},
		{Table: MainTable, Dst: pfx("2001:db8::/32"), Priority: 1024},
		{Table: MainTable, Dst: pfx("2001:db8::1:0:0:1/128"), Priority: 1024},
		{Table: MainTable, Dst: pfx("ffff::/16"), Priority: 1024},
		{Table: 1000, Dst: pfx("0.0.0.0/0")},
		{Table: 1 << 30, Dst: pfx("::1/128")},
	}
	for i, k := range keys {
		if back := keyOf(k).routeKey(); back != k {
			t.Errorf("%v packed and unpacked is %v", k, back)
		}
		for j, o := range keys {
			if got, want := compareRKey(keyOf(k), keyOf(o)), cmp.Compare(i, j); got != want {
				t.Errorf("compare(%v, %v) = %d, want %d", k, o, got, want)
			}
		}
	}
	if keyOf(keys[0]) == keyOf(RouteKey{Table: MainTable, Dst: pfx("::/0")}) {
		t.Error("IPv4 and IPv6 default routes pack to the same key")
	}
}

package fib

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// manySet is n IPv4 /24s from 16.0.0.0 up, all over the same next hops.
func manySet(n int, gws ...netip.Addr) []Route {
	rs := make([]Route, n)
	for i := range rs {
		a := netip.AddrFrom4([4]byte{byte(16 + i>>16), byte(i >> 8), byte(i), 0})
		r := Route{Key: RouteKey{Dst: netip.PrefixFrom(a, 24)}}
		for _, gw := range gws {
			r.NextHops = append(r.NextHops, NextHop{Gateway: gw})
		}
		rs[i] = r
	}
	return rs
}

// nexthopIDs lists the nexthop ids with switchd's protocol in n: groups
// and single next hops.
func nexthopIDs(t testing.TB, tp *topo) (groups, singles []string) {
	t.Helper()
	out, err := tp.r.Run(context.Background(), "ip", "nexthop", "show", "protocol", protoStr)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		if f[2] == "group" {
			groups = append(groups, f[1])
		} else {
			singles = append(singles, f[1])
		}
	}
	return groups, singles
}

// countRoutes counts switchd's IPv4 routes in a table through iproute2.
func countRoutes(t testing.TB, tp *topo, table int) int {
	t.Helper()
	cmd := tp.r.Command(context.Background(), "ip", "-4", "route", "show", "table", fmt.Sprint(table), "proto", protoStr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "\t") && !strings.HasPrefix(sc.Text(), " ") {
			n++
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return n
}

// Routes of two tables with the same next hops share one group; the group
// lives as long as a route of either table uses it.
func TestPrivilegedTablesShareNexthopGroups(t *testing.T) {
	tp := newTopo(t, "tables")
	k := openKernel(t, tp.r)
	t100 := newKernelTable(t, k, 100, ModeNexthopGroups)
	t200 := newKernelTable(t, k, 200, ModeNexthopGroups)
	r100 := manySet(10, gw4a, gw4b)
	r200 := manySet(10, gw4b, gw4a)
	for i := range r100 {
		r100[i].Key.Table, r200[i].Key.Table = 100, 200
	}
	mustSet(t, t100, r100...)
	mustSet(t, t200, r200...)
	mustApply(t, t100)
	mustApply(t, t200)
	groups, singles := nexthopIDs(t, tp)
	if len(groups) != 1 || len(singles) != 2 {
		t.Fatalf("groups %v, next hops %v; want one group of two", groups, singles)
	}
	if n := countRoutes(t, tp, 100) + countRoutes(t, tp, 200); n != 20 {
		t.Fatalf("%d routes in tables 100 and 200, want 20", n)
	}
	// Table 100 gives up its routes: the group stays for table 200.
	for _, r := range r100 {
		t100.DeleteRoute(r.Key)
	}
	mustApply(t, t100)
	if g, _ := nexthopIDs(t, tp); len(g) != 1 {
		t.Fatalf("group gone while table 200 uses it: %v", g)
	}
	if n := countRoutes(t, tp, 200); n != 10 {
		t.Fatalf("table 200 has %d routes, want 10", n)
	}
	// Table 200 moves all its routes to one next hop: its group is
	// rewritten in place (it is the only user now), no route is written.
	before := t200.Stats()
	for i := range r200 {
		r200[i].NextHops = r200[i].NextHops[:1]
	}
	mustSet(t, t200, r200...)
	mustApply(t, t200)
	if s := t200.Stats(); s.RouteWrites() != before.RouteWrites() || s.InPlace-before.InPlace != 10 {
		t.Errorf("stats %+v -> %+v, want 10 routes moved by one group rewrite", before, s)
	}
	for _, r := range r200 {
		t200.DeleteRoute(r.Key)
	}
	mustApply(t, t200)
	if g, s := nexthopIDs(t, tp); len(g) != 0 || len(s) != 0 {
		t.Errorf("unused nexthops left: groups %v, next hops %v", g, s)
	}
}

// A nexthop group deleted behind switchd's back takes its routes with it;
// a resync puts both back and leaves a foreign route at the same prefix.
func TestPrivilegedResyncRestoresDeletedGroup(t *testing.T) {
	tp := newTopo(t, "regroup")
	ctx := context.Background()
	tb := newModeTable(t, tp, ModeNexthopGroups)
	rs := manySet(5, gw4a, gw4b)
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	if _, err := tp.r.Run(ctx, "ip", "route", "add", "16.0.0.0/24", "via", "192.0.2.3", "proto", "static", "metric", "50"); err != nil {
		t.Fatal(err)
	}
	groups, _ := nexthopIDs(t, tp)
	if len(groups) != 1 {
		t.Fatalf("groups %v, want 1", groups)
	}
	if _, err := tp.r.Run(ctx, "ip", "nexthop", "del", "id", groups[0]); err != nil {
		t.Fatal(err)
	}
	if n := countRoutes(t, tp, MainTable); n != 0 {
		t.Fatalf("%d routes survived their group", n)
	}
	tb.QueueResync()
	mustApply(t, tb)
	if n := countRoutes(t, tp, MainTable); n != 5 {
		t.Errorf("%d routes after resync, want 5", n)
	}
	if g, _ := nexthopIDs(t, tp); len(g) != 1 {
		t.Errorf("groups after resync %v, want 1", g)
	}
	foreign := findRoutes(kernelRoutes(t, tp.r, "-4"), "16.0.0.0/24")
	if len(foreign) != 2 {
		t.Errorf("16.0.0.0/24: %+v, want ours and the static one", foreign)
	}
	// In sync now: nothing more to write.
	w := tb.Stats().Writes()
	tb.QueueResync()
	mustApply(t, tb)
	if d := tb.Stats().Writes() - w; d != 0 {
		t.Errorf("resync after repair wrote %d times", d)
	}
}

// One of two next hops goes down. The kernel drops it from the group, so
// routes resolve via the survivor without any write; when the inputs
// withdraw the path, and when the link returns and the path with it,
// switchd updates the group, never the routes.
func TestPrivilegedLinkDownOneGroupUpdate(t *testing.T) {
	const n = 1000
	tp := newTopo(t, "linkdown")
	ctx := context.Background()
	tb := newModeTable(t, tp, ModeNexthopGroups)
	rs := manySet(n, gw4a, gw4b)
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	routeGet := func(dst string) string {
		t.Helper()
		out, err := tp.r.Run(ctx, "ip", "route", "get", dst)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if _, err := tp.r.Run(ctx, "ip", "link", "set", "a0", "down"); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"16.0.0.1", "16.1.2.3", "16.3.231.9"} {
		for range 8 { // several flows: none may hash to the dead path
			if out := routeGet(dst); !strings.Contains(out, "via 192.0.2.3 dev a1") {
				t.Fatalf("ip route get %s = %q, want via the survivor", dst, out)
			}
		}
	}
	// The inputs withdraw the dead path from every route.
	before := tb.Stats()
	for i := range rs {
		rs[i].NextHops = []NextHop{{Gateway: gw4b}}
	}
	mustSet(t, tb, rs...)
	tb.QueueResync()
	mustApply(t, tb)
	s := tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops-before.Nexthops > 1 {
		t.Errorf("withdraw: stats %+v -> %+v, want no route writes and at most one nexthop write", before, s)
	}
	// The link and the path come back: one nexthop object, one group
	// rewrite, no route write.
	if _, err := tp.r.Run(ctx, "ip", "link", "set", "a0", "up"); err != nil {
		t.Fatal(err)
	}
	before = tb.Stats()
	for i := range rs {
		rs[i].NextHops = []NextHop{{Gateway: gw4a}, {Gateway: gw4b}}
	}
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops-before.Nexthops != 2 || s.InPlace-before.InPlace != n {
		t.Errorf("restore: stats %+v -> %+v, want one nexthop, one group write and %d routes moved in place", before, s, n)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "16.0.5.0/24"); len(rs) != 1 || len(gateways(rs[0])) != 2 {
		t.Errorf("16.0.5.0/24 after restore: %+v, want two paths", rs)
	}
	// Without link events: all routes drop path B at once: exactly one
	// group rewrite (plus the delete of the unused object), no route write.
	before = tb.Stats()
	for i := range rs {
		rs[i].NextHops = []NextHop{{Gateway: gw4a}}
	}
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops-before.Nexthops != 2 {
		t.Errorf("withdraw B: stats %+v -> %+v, want one group rewrite and one object delete", before, s)
	}
	if out := routeGet("16.2.0.1"); !strings.Contains(out, "via 192.0.2.1 dev a0") {
		t.Errorf("after withdrawing B: %q", out)
	}
}

// routeEvents counts kernel notifications about routes of a protocol,
// through its own subscription (vishvananda/netlink), independent of the
// package's monitor.
type routeEvents struct {
	mu         sync.Mutex
	adds, dels int
	marks      map[string]bool
	stop       chan struct{}
	wg         sync.WaitGroup
	protocol   netlink.RouteProtocol
}

func watchRoutes(t *testing.T, tp *topo) *routeEvents {
	t.Helper()
	ch := make(chan netlink.RouteUpdate, 4096)
	ev := &routeEvents{stop: make(chan struct{}), marks: make(map[string]bool), protocol: Protocol}
	nsh := tp.r.NsHandle()
	if err := netlink.RouteSubscribeWithOptions(ch, ev.stop, netlink.RouteSubscribeOptions{
		Namespace:         &nsh,
		ReceiveBufferSize: 256 << 20,
		ErrorCallback: func(err error) {
			select {
			case <-ev.stop: // closing the subscription reports an error
			default:
				t.Errorf("route watch: %v", err)
			}
		},
	}); err != nil {
		t.Fatal(err)
	}
	ev.wg.Add(1)
	go func() {
		defer ev.wg.Done()
		for u := range ch {
			ev.mu.Lock()
			switch {
			case u.Protocol == ev.protocol && u.Type == unix.RTM_NEWROUTE:
				ev.adds++
			case u.Protocol == ev.protocol && u.Type == unix.RTM_DELROUTE:
				ev.dels++
			case u.Dst != nil:
				ev.marks[u.Dst.String()] = true
			}
			ev.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(ev.stop)
		ev.wg.Wait()
	})
	return ev
}

// settle adds and removes a foreign marker route and waits for its
// notification: every notification before it has been counted.
func (ev *routeEvents) settle(t *testing.T, tp *topo, mark string) (adds, dels int) {
	t.Helper()
	if _, err := tp.r.Run(context.Background(), "ip", "route", "add", mark, "dev", "a0", "proto", "static"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second) // hang guard, not a timing assertion
	for {
		ev.mu.Lock()
		seen, a, d := ev.marks[mark], ev.adds, ev.dels
		ev.mu.Unlock()
		if seen {
			return a, d
		}
		if time.Now().After(deadline) {
			t.Fatal("marker route notification never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart: 100,000 routes present, a new Table with the same desired
// state writes no route (the kernel reports no route event); routes not
// desired any more are swept only once the sweep hold is released.
func TestPrivilegedRestartWithoutFlaps(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 5000
	}
	const withdrawn = 1000
	tp := newTopo(t, "restart")
	rs := manySet(n, gw4a, gw4b)
	first := newModeTable(t, tp, ModeNexthopGroups)
	mustSet(t, first, rs...)
	mustApply(t, first)
	first.Close() // switchd stops; the routes stay

	ev := watchRoutes(t, tp)
	a0, d0 := ev.settle(t, tp, "203.0.113.1/32")

	second := newModeTable(t, tp, ModeNexthopGroups, WithSweepHold())
	mustSet(t, second, rs[withdrawn:]...) // the first routes were withdrawn meanwhile
	if err := second.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := second.Stats(); s.Writes() != 0 {
		t.Errorf("restart under sweep hold wrote: %+v", s)
	}
	if second.Stale() != withdrawn {
		t.Errorf("stale = %d, want %d", second.Stale(), withdrawn)
	}
	a1, d1 := ev.settle(t, tp, "203.0.113.2/32")
	if a1 != a0 || d1 != d0 {
		t.Errorf("restart: kernel reported %d route adds and %d deletes, want none", a1-a0, d1-d0)
	}
	if c := countRoutes(t, tp, MainTable); c != n {
		t.Errorf("%d routes during the hold, want all %d", c, n)
	}
	// Inputs complete: exactly the withdrawn routes go.
	second.EndOfInputs()
	mustApply(t, second)
	a2, d2 := ev.settle(t, tp, "203.0.113.3/32")
	if a2 != a1 || d2-d1 != withdrawn {
		t.Errorf("sweep: %d adds and %d deletes, want 0 and %d", a2-a1, d2-d1, withdrawn)
	}
	if c := countRoutes(t, tp, MainTable); c != n-withdrawn {
		t.Errorf("%d routes after the sweep, want %d", c, n-withdrawn)
	}
}

// One million IPv4 routes through one nexthop group, checked by a kernel
// dump through iproute2, then removed.
func TestPrivilegedMillionRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 routes: not in -short")
	}
	const n = 1000000
	tp := newTopo(t, "million")
	tb := newModeTable(t, tp, ModeNexthopGroups)
	rs := manySet(n, gw4a, gw4b)
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	if g, s := nexthopIDs(t, tp); len(g) != 1 || len(s) != 2 {
		t.Errorf("groups %v, next hops %v, want one group of two", g, s)
	}
	if c := countRoutes(t, tp, MainTable); c != n {
		t.Fatalf("kernel holds %d of our routes, want %d", c, n)
	}
	w := tb.Stats().Writes()
	tb.QueueResync()
	mustApply(t, tb)
	if d := tb.Stats().Writes() - w; d != 0 {
		t.Errorf("resync of 1M routes in sync wrote %d times", d)
	}
	for _, r := range rs {
		tb.DeleteRoute(r.Key)
	}
	mustApply(t, tb)
	if c := countRoutes(t, tp, MainTable); c != 0 {
		t.Errorf("%d routes left after deleting all", c)
	}
	if g, s := nexthopIDs(t, tp); len(g)+len(s) != 0 {
		t.Errorf("nexthops left: %v %v", g, s)
	}
}

// Large changes are cut into batches; an interrupt stops Apply between
// them and the next Apply continues.
func TestPrivilegedApplyInterrupt(t *testing.T) {
	tp := newTopo(t, "interrupt")
	urgent := false
	tb := newModeTable(t, tp, ModeNexthopGroups, WithBatchSize(100), WithInterrupt(func() bool { return urgent }))
	mustSet(t, tb, manySet(1000, gw4a)...)
	urgent = true
	if err := tb.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !tb.More() || tb.Pending() != 900 {
		t.Fatalf("More=%v Pending=%d after an interrupted Apply, want true and 900", tb.More(), tb.Pending())
	}
	urgent = false
	mustApply(t, tb)
	if tb.More() || countRoutes(t, tp, MainTable) != 1000 {
		t.Errorf("More=%v, %d routes", tb.More(), countRoutes(t, tp, MainTable))
	}
}

func TestDecodeOffloadFlags(t *testing.T) {
	var m pnl.Batch
	r := route("198.51.100.0/24", 0, ip("192.0.2.1"))
	r.Normalize()
	appendRoute(&m, opReplace, r, 0, Protocol)
	data := m.Bytes()[unix.NLMSG_HDRLEN:]
	binary.NativeEndian.PutUint32(data[8:], unix.RTM_F_OFFLOAD|unix.RTM_F_TRAP)
	var d routeDecoder
	kr, ok := d.decode(data)
	if !ok || !kr.route.Equal(r) {
		t.Fatalf("decode = %v %v, want %v", kr.route, ok, r)
	}
	if kr.route.offload != Offloaded|Trapped || kr.route.offload.String() != "offload,trap" {
		t.Errorf("offload = %v", kr.route.offload)
	}
	binary.NativeEndian.PutUint32(data[8:], unix.RTM_F_OFFLOAD_FAILED)
	if kr, _ = d.decode(data); kr.route.offload != OffloadFailed {
		t.Errorf("offload = %v, want offload_failed", kr.route.offload)
	}
	// The table keeps what the kernel reports.
	fake := &fakeDataplane{kernel: []Route{kr.route}}
	tb := newTable(MainTable, withDataplane(fake))
	mustSet(t, tb, r)
	mustApply(t, tb)
	if o, ok := tb.Offload(r.Key); !ok || o != OffloadFailed {
		t.Errorf("Offload = %v %v", o, ok)
	}
}

// A withdrawn path is counted per group as the routes are handed over, so
// that Apply can rewrite the group before it looks at any route: the moves
// are exact at every step, and a later change of one route's mind takes
// that route out of the group move.
func TestPrivilegedGroupMoveCounted(t *testing.T) {
	const n = 100
	tp := newTopo(t, "movecount")
	tb := newModeTable(t, tp, ModeNexthopGroups)
	mustSet(t, tb, manySet(n, gw4a, gw4b)...)
	mustApply(t, tb)
	one := manySet(n, gw4b)
	mustSet(t, tb, one...)
	if len(tb.moves) != 1 {
		t.Fatalf("moves %v, want one group move", tb.moves)
	}
	for mv, c := range tb.moves {
		if c != n || tb.setByID[mv.s] == nil || len(tb.setByID[mv.s].nhs) != 1 {
			t.Fatalf("move %v counts %d routes, want %d to one next hop", mv, c, n)
		}
	}
	// One route changes its mind: not every user moves the same way, so
	// the group must not be rewritten (that would move the odd one too).
	mustSet(t, tb, manySet(1, gw4a)...)
	before := tb.Stats()
	mustApply(t, tb)
	s := tb.Stats()
	if s.InPlace != before.InPlace || s.RouteWrites()-before.RouteWrites() != n {
		t.Errorf("stats %+v -> %+v: want %d route writes and no group rewrite", before, s, n)
	}
	if len(tb.moves) != 0 || len(tb.pending) != 0 {
		t.Errorf("after Apply: moves %v pending %d, want none", tb.moves, len(tb.pending))
	}
	if out, _ := tp.r.Run(context.Background(), "ip", "route", "get", "16.0.0.1"); !strings.Contains(out, "via 192.0.2.1") {
		t.Errorf("16.0.0.0/24 = %q, want via 192.0.2.1 alone", out)
	}
	// Everyone back on both paths, then everyone off A: one group rewrite
	// before any route is looked at.
	mustSet(t, tb, manySet(n, gw4a, gw4b)...)
	mustApply(t, tb)
	mustSet(t, tb, one...)
	before = tb.Stats()
	mustApply(t, tb)
	s = tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.InPlace-before.InPlace != n {
		t.Errorf("stats %+v -> %+v: want %d routes moved in place", before, s, n)
	}
	if len(tb.sets) != 1 || len(tb.setByID) != 1 {
		t.Errorf("%d interned sets (%d by id), want the one in use", len(tb.sets), len(tb.setByID))
	}
}

// A link goes down while routes still want its next hop: the routes stay
// pending with their error in Errors, are retried only on their backoff
// (no write is even attempted before NextRetry, so a caller that follows
// NextRetry cannot spin), and nothing is counted as a write that could not
// be sent. A withdrawn route leaves Errors; the link's return heals the
// rest.
func TestPrivilegedLinkDownRoutesPending(t *testing.T) {
	tp := newTopo(t, "downpend")
	ctx := context.Background()
	now := time.Unix(1000, 0)
	tb := newModeTable(t, tp, ModeNexthopGroups, WithBackoff(100*time.Millisecond, time.Second),
		withClock(func() time.Time { return now }))
	mustApply(t, tb)
	if _, err := tp.r.Run(ctx, "ip", "link", "set", "a0", "down"); err != nil {
		t.Fatal(err)
	}
	x, y := route("198.51.100.0/24", 0, gw4a), route("203.0.113.0/24", 0, gw4a)
	mustSet(t, tb, x, y)
	before := tb.Stats()
	err := tb.Apply(ctx)
	if !errors.Is(err, unix.ENETUNREACH) || !strings.Contains(err.Error(), "198.51.100.0/24") {
		t.Fatalf("Apply = %v, want the unreachable next hop named with its route", err)
	}
	s := tb.Stats()
	if s.RouteWrites() != before.RouteWrites() || s.Nexthops != before.Nexthops || s.Failures-before.Failures != 2 {
		t.Errorf("stats %+v -> %+v: want 2 failures and no write counted (none could be sent)", before, s)
	}
	errs := tb.Errors()
	if len(errs) != 2 || errs[0].Key.Dst != x.Key.Dst || !errors.Is(errs[0].Err, unix.ENETUNREACH) || errs[0].Attempts != 1 {
		t.Fatalf("Errors = %+v, want both routes, unreachable, one attempt", errs)
	}
	if tb.Pending() != 2 || !tb.NextRetry().Equal(now.Add(100*time.Millisecond)) {
		t.Fatalf("pending %d, next retry %v, want 2 and now+100ms", tb.Pending(), tb.NextRetry())
	}

	// Before the retry is due, Apply does nothing at all.
	before = tb.Stats()
	if err := tb.Apply(ctx); err == nil || !strings.Contains(err.Error(), "wait for their retry") {
		t.Errorf("Apply before the retry = %v, want the waiting routes reported", err)
	}
	if tb.Stats() != before {
		t.Errorf("Apply before the retry changed stats %+v -> %+v", before, tb.Stats())
	}
	// Due: retried, fails again, and waits twice as long.
	now = now.Add(100 * time.Millisecond)
	if err := tb.Apply(ctx); !errors.Is(err, unix.ENETUNREACH) {
		t.Errorf("retry = %v, want unreachable again", err)
	}
	if errs := tb.Errors(); len(errs) != 2 || errs[0].Attempts != 2 || !tb.NextRetry().Equal(now.Add(200*time.Millisecond)) {
		t.Errorf("after the second failure: %+v, next retry %v, want 2 attempts and now+200ms", errs, tb.NextRetry())
	}

	// y's path is withdrawn: it leaves Errors and pending at once.
	tb.DeleteRoute(y.Key)
	if errs := tb.Errors(); len(errs) != 1 || errs[0].Key.Dst != x.Key.Dst || tb.Pending() != 1 {
		t.Errorf("after withdrawing y: errors %+v, pending %d, want x alone", errs, tb.Pending())
	}
	if tb.RouteErr(y.Key) != nil || tb.RouteErr(x.Key) == nil {
		t.Errorf("RouteErr: x %v, y %v", tb.RouteErr(x.Key), tb.RouteErr(y.Key))
	}

	// The link returns: the next due retry installs x.
	if _, err := tp.r.Run(ctx, "ip", "link", "set", "a0", "up"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(200 * time.Millisecond)
	mustApply(t, tb)
	if len(tb.Errors()) != 0 || !tb.NextRetry().IsZero() {
		t.Errorf("after the link returned: errors %+v, next retry %v", tb.Errors(), tb.NextRetry())
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24"); len(rs) != 1 || !slices.Equal(gateways(rs[0]), []string{"192.0.2.1@a0"}) {
		t.Errorf("198.51.100.0/24 = %+v, want via 192.0.2.1 on a0", rs)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "203.0.113.0/24"); len(rs) != 0 {
		t.Errorf("withdrawn 203.0.113.0/24 installed: %+v", rs)
	}
}

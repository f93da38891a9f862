package fib

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of Table's planning through the whole dataplane seam, without
// root: group moves, next hops down and up, batching and interrupts,
// failures and retries, against groupFake.

// groupFake is a dataplane with shared nexthop groups, as the nexthop
// manager keeps them: one group per next-hop set, counted users, a group
// rewrite in place when all its users move (or a gateway goes down), and
// the groups no route uses deleted after each write. It logs every kernel
// operation in order: "add DST", "replace DST", "delete DST" (route
// writes), "inplace DST" (a route made right by a group rewrite), "move
// gID", "drop GW gID", "list".
type groupFake struct {
	routes  map[RouteKey]Route
	groups  map[uint32][]NextHop
	usage   map[uint32]int
	next    uint32
	log     []string
	fail    map[netip.Prefix]error
	changed bool // nexthopChanged's answer
}

func newGroupFake() *groupFake {
	return &groupFake{routes: make(map[RouteKey]Route), groups: make(map[uint32][]NextHop), usage: make(map[uint32]int), next: 1}
}

func (f *groupFake) logf(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

// take returns the log since the last take.
func (f *groupFake) take() []string {
	l := f.log
	f.log = nil
	return l
}

func (f *groupFake) list(ctx context.Context, table, protocol int, _ *foreignSink) ([]Route, error) {
	f.logf("list")
	return slices.Collect(maps.Values(f.routes)), nil
}

func sameHops(a, b []NextHop) bool { return slices.Equal(a, b) }

func (f *groupFake) groupOf(nhs []NextHop) uint32 {
	for id, m := range f.groups {
		if sameHops(m, nhs) {
			return id
		}
	}
	id := f.next
	f.next++
	f.groups[id] = slices.Clone(nhs)
	return id
}

func (f *groupFake) write(ctx context.Context, ops []op, protocol int, ctl batchControl) ([]error, int) {
	errs := make([]error, len(ops))
	b := batcher{ctl: ctl}
	for i, o := range ops {
		dst := o.route.Key.Dst
		if o.kind != opDelete && o.route.Type == Unicast && o.oldNHG != 0 && sameHops(f.groups[o.oldNHG], o.route.NextHops) {
			// moveGroups got there first: bookkeeping only.
			ops[i].inPlace, ops[i].route.nhg = true, o.oldNHG
			f.routes[o.route.Key] = ops[i].route
			f.logf("inplace %v", dst)
			continue
		}
		if err := b.next(ctx); err != nil {
			errs[i] = notSent{err}
			continue
		}
		f.logf("%v %v", o.kind, dst)
		if err := f.fail[dst]; err != nil {
			errs[i] = err
			continue
		}
		if old, ok := f.routes[o.route.Key]; ok && old.nhg != 0 {
			f.usage[old.nhg]--
		}
		if o.kind == opDelete {
			delete(f.routes, o.route.Key)
			continue
		}
		if o.route.Type == Unicast {
			ops[i].route.nhg = f.groupOf(o.route.NextHops)
			f.usage[ops[i].route.nhg]++
		}
		f.routes[o.route.Key] = ops[i].route
	}
	for id := range f.groups {
		if f.usage[id] <= 0 {
			delete(f.groups, id)
			delete(f.usage, id)
		}
	}
	return errs, 0
}

func (f *groupFake) hasGroups() bool { return true }

func (f *groupFake) moveGroups(ctx context.Context, moves []groupMove) ([]uint32, int) {
	var done []uint32
	slices.SortFunc(moves, func(a, b groupMove) int { return int(a.g) - int(b.g) })
	for _, mv := range moves {
		if f.groups[mv.g] == nil || f.usage[mv.g] != mv.users || sameHops(f.groups[mv.g], mv.nhs) {
			continue
		}
		f.groups[mv.g] = slices.Clone(mv.nhs)
		f.logf("move g%d", mv.g)
		done = append(done, mv.g)
	}
	return done, len(done)
}

func (f *groupFake) dropGateways(ctx context.Context, gws []netip.Addr) (map[uint32][]NextHop, int) {
	out := make(map[uint32][]NextHop)
	for _, id := range slices.Sorted(maps.Keys(f.groups)) {
		m := f.groups[id]
		rest := slices.DeleteFunc(slices.Clone(m), func(nh NextHop) bool { return slices.Contains(gws, nh.Gateway) })
		if len(rest) == 0 || len(rest) == len(m) {
			continue
		}
		f.groups[id] = rest
		out[id] = rest
		f.logf("drop %v g%d", gws, id)
	}
	for k, r := range f.routes {
		if rest, ok := out[r.nhg]; ok {
			r.NextHops = rest
			f.routes[k] = r
		}
	}
	return out, len(out)
}

func (f *groupFake) nexthopChanged(bool, uint32, *nhNotice) bool { return f.changed }

// fakeTable is a Table over f with the first resync done.
func fakeTable(t *testing.T, f *groupFake, opts ...Opt) *Table {
	t.Helper()
	tb := newTable(MainTable, append([]Opt{withDataplane(f)}, opts...)...)
	mustApply(t, tb)
	f.take()
	return tb
}

// countOps counts the log lines starting with each prefix.
func countOps(log []string) map[string]int {
	n := make(map[string]int)
	for _, l := range log {
		n[strings.Fields(l)[0]]++
	}
	return n
}

var (
	fa = netip.MustParseAddr("192.0.2.1")
	fb = netip.MustParseAddr("192.0.2.3")
)

// Deletes go first, then adds and replaces in key order; a second Apply
// of the same state, and a resync that finds it, write nothing.
func TestPlanSecondApplyWritesNothing(t *testing.T) {
	f := newGroupFake()
	tb := fakeTable(t, f)
	mustSet(t, tb, route("10.2.0.0/16", 0, fa), route("10.1.0.0/16", 0, fa, fb),
		Route{Key: RouteKey{Dst: pfx("10.3.0.0/16")}, Type: Blackhole})
	mustApply(t, tb)
	if got, want := f.take(), []string{"add 10.1.0.0/16", "add 10.2.0.0/16", "add 10.3.0.0/16"}; !slices.Equal(got, want) {
		t.Fatalf("first Apply: %q, want %q", got, want)
	}
	mustApply(t, tb)
	tb.QueueResync()
	mustApply(t, tb)
	if got := f.take(); !slices.Equal(got, []string{"list"}) {
		t.Errorf("second Apply and a resync: %q, want the dump alone", got)
	}
	tb.DeleteRoute(route("10.2.0.0/16", 0).Key)
	mustSet(t, tb, route("10.0.0.0/16", 0, fb))
	mustApply(t, tb)
	if got, want := f.take(), []string{"delete 10.2.0.0/16", "add 10.0.0.0/16"}; !slices.Equal(got, want) {
		t.Errorf("a delete and an add: %q, want %q", got, want)
	}
}

// A path withdrawn from every user of a group is one group rewrite before
// any route is looked at; if one user wants something else, the group is
// not moved and every route is written.
func TestPlanGroupMoves(t *testing.T) {
	const n = 50
	f := newGroupFake()
	tb := fakeTable(t, f)
	both, onlyB := manySet(n, fa, fb), manySet(n, fb)
	mustSet(t, tb, both...)
	mustApply(t, tb)
	f.take()

	mustSet(t, tb, onlyB...)
	before := tb.Stats()
	mustApply(t, tb)
	log := f.take()
	if len(log) != n+1 || !strings.HasPrefix(log[0], "move g") || countOps(log)["inplace"] != n {
		t.Fatalf("withdrawal from all: %q, want one group move, then %d routes in place", log, n)
	}
	if s := tb.Stats(); s.RouteWrites() != before.RouteWrites() || s.InPlace-before.InPlace != n || s.Nexthops-before.Nexthops != 1 {
		t.Errorf("stats %+v -> %+v, want %d in place, one nexthop write, no route write", before, s, n)
	}
	for _, r := range tb.KernelRoutes() {
		if !slices.Equal(gatewaysOf(r), []netip.Addr{fb}) {
			t.Fatalf("kernel view %v, want via %v only", r, fb)
		}
	}

	// All back on both paths but one, which takes path a alone: not every
	// user of the group moves the same way, so routes are written.
	mustSet(t, tb, both[1:]...)
	mustSet(t, tb, manySet(1, fa)...)
	mustApply(t, tb)
	log = f.take()
	if c := countOps(log); c["move"] != 0 || c["replace"] != n || c["inplace"] != 0 {
		t.Errorf("split move: %v (%q), want %d replaces and no group move", c, log, n)
	}
	mustApply(t, tb)
	if l := f.take(); len(l) != 0 {
		t.Errorf("second Apply wrote %q", l)
	}
}

// NextHopDown rewrites the groups holding the gateway before anything
// else; the routes keep wanting it, yet nothing is written for them, nor
// for their withdrawals. A group whose only member is the gateway is left
// alone. NextHopUp gives the gateway back to the routes that want it.
func TestPlanNextHopDownUp(t *testing.T) {
	const n = 20
	f := newGroupFake()
	tb := fakeTable(t, f)
	alone := route("198.51.100.0/24", 0, fa)
	mustSet(t, tb, manySet(n, fa, fb)...)
	mustSet(t, tb, alone)
	mustApply(t, tb)
	f.take()

	tb.NextHopDown(fa)
	mustApply(t, tb)
	log := f.take()
	if len(log) != 1 || !strings.HasPrefix(log[0], "drop [192.0.2.1] g") {
		t.Fatalf("NextHopDown: %q, want one group rewrite and nothing else", log)
	}
	if !tb.InSync() || !slices.Equal(tb.DownNextHops(), []netip.Addr{fa}) {
		t.Errorf("after the rewrite: in sync %v, down %v", tb.InSync(), tb.DownNextHops())
	}
	for _, r := range tb.KernelRoutes() {
		want := []netip.Addr{fb}
		if r.Key.Dst == alone.Key.Dst {
			want = []netip.Addr{fa}
		}
		if !slices.Equal(gatewaysOf(r), want) {
			t.Errorf("kernel view %v, want via %v", r, want)
		}
	}

	// Half the withdrawals arrive: the kernel is right already.
	mustSet(t, tb, manySet(n/2, fb)...)
	mustApply(t, tb)
	if l := f.take(); len(l) != 0 {
		t.Errorf("withdrawals after NextHopDown wrote %q", l)
	}

	// The session returns before the rest: the routes that still want a
	// get it back. The group is shared with routes that no longer want a,
	// so it is not moved: those routes are written to a new group.
	tb.NextHopUp(fa)
	mustApply(t, tb)
	log = f.take()
	if c := countOps(log); c["replace"] != n-n/2 || len(log) != n-n/2 {
		t.Errorf("NextHopUp: %v (%q), want %d replaces and nothing else", c, log, n-n/2)
	}
	if !tb.InSync() || len(tb.DownNextHops()) != 0 {
		t.Errorf("after NextHopUp: in sync %v, down %v", tb.InSync(), tb.DownNextHops())
	}
	for _, r := range tb.KernelRoutes() {
		if r.Key.Dst.Bits() != 24 || r.Key.Dst == alone.Key.Dst {
			continue
		}
		want := []netip.Addr{fa, fb}
		if i := int(r.Key.Dst.Addr().As4()[2]); i < n/2 {
			want = []netip.Addr{fb}
		}
		if !slices.Equal(gatewaysOf(r), want) {
			t.Errorf("after NextHopUp: %v, want via %v", r, want)
		}
	}
}

// Between batches Apply asks its interrupt; a true answer leaves the rest
// pending (More), with no error and nothing counted, and the next Apply
// goes on where it stopped.
func TestPlanInterruptBetweenBatches(t *testing.T) {
	f := newGroupFake()
	urgent := true
	asked := 0
	tb := fakeTable(t, f, WithBatchSize(10), WithInterrupt(func() bool { asked++; return urgent }))
	mustSet(t, tb, manySet(35, fa)...)
	if err := tb.Apply(context.Background()); err != nil {
		t.Fatalf("interrupted Apply = %v, want nil", err)
	}
	if got := f.take(); len(got) != 10 || asked != 1 || !tb.More() || tb.Pending() != 25 {
		t.Fatalf("interrupted Apply sent %d writes, asked %d times; More %v, pending %d; want 10, 1, true, 25",
			len(got), asked, tb.More(), tb.Pending())
	}
	if s := tb.Stats(); s.Adds != 10 || s.Failures != 0 {
		t.Errorf("stats %+v, want 10 adds and no failure", s)
	}
	urgent = false
	mustApply(t, tb)
	if got := f.take(); len(got) != 25 || tb.More() {
		t.Errorf("the next Apply sent %d writes (More %v), want the 25 left", len(got), tb.More())
	}
	if asked != 3 {
		t.Errorf("interrupt asked %d times in all, want 3 (after each full batch but the last)", asked)
	}
}

// A failed write stays pending, waits for its backoff (nothing is sent
// before), and is retried alone; the others are not written again.
func TestPlanFailureRetried(t *testing.T) {
	f := newGroupFake()
	now := time.Unix(1000, 0)
	tb := fakeTable(t, f, withClock(func() time.Time { return now }), WithBackoff(time.Second, time.Minute))
	bad := route("10.9.0.0/16", 0, fa)
	f.fail = map[netip.Prefix]error{bad.Key.Dst: unix.ENETUNREACH}
	mustSet(t, tb, route("10.1.0.0/16", 0, fa), bad)
	err := tb.Apply(context.Background())
	if !errors.Is(err, unix.ENETUNREACH) || !strings.Contains(err.Error(), "10.9.0.0/16") || tb.Pending() != 1 {
		t.Fatalf("Apply = %v, pending %d; want the failure named and pending", err, tb.Pending())
	}
	f.take()
	if err := tb.Apply(context.Background()); err == nil || len(f.take()) != 0 {
		t.Errorf("Apply during backoff = %v, want an error and nothing sent", err)
	}
	now = now.Add(time.Second)
	f.fail = nil
	mustApply(t, tb)
	if got := f.take(); !slices.Equal(got, []string{"add 10.9.0.0/16"}) {
		t.Errorf("retry sent %q, want the failed route alone", got)
	}
	if len(tb.Errors()) != 0 {
		t.Errorf("Errors after the retry: %v", tb.Errors())
	}
}

// A nexthop notification the dataplane's view does not explain queues a
// resync; one it explains does not.
func TestPlanNexthopChangeResyncs(t *testing.T) {
	f := newGroupFake()
	tb := fakeTable(t, f)
	tb.OnRouteEvent(RouteEvent{nexthop: 7, nh: &nhNotice{}})
	mustApply(t, tb)
	if l := f.take(); len(l) != 0 {
		t.Errorf("an explained nexthop event led to %q", l)
	}
	f.changed = true
	tb.OnRouteEvent(RouteEvent{nexthop: 7, Deleted: true})
	mustApply(t, tb)
	if l := f.take(); !slices.Equal(l, []string{"list"}) {
		t.Errorf("an unexplained nexthop event led to %q, want a dump", l)
	}
}

func gatewaysOf(r Route) []netip.Addr {
	var out []netip.Addr
	for _, nh := range r.NextHops {
		out = append(out, nh.Gateway)
	}
	return out
}

// NextHopUp before any withdrawal: every user of the group wants the
// gateway back, so the group is rewritten once and no route is written.
func TestPlanNextHopUpMovesGroupBack(t *testing.T) {
	f := newGroupFake()
	tb := fakeTable(t, f)
	mustSet(t, tb, manySet(10, fa, fb)...)
	mustApply(t, tb)
	tb.NextHopDown(fa)
	mustApply(t, tb)
	f.take()
	tb.NextHopUp(fa)
	mustApply(t, tb)
	log := f.take()
	if c := countOps(log); c["move"] != 1 || c["inplace"] != 10 || len(log) != 11 || !strings.HasPrefix(log[0], "move") {
		t.Errorf("NextHopUp: %q, want one group move first, then 10 routes in place", log)
	}
	for _, r := range tb.KernelRoutes() {
		if !slices.Equal(gatewaysOf(r), []netip.Addr{fa, fb}) {
			t.Errorf("after NextHopUp: %v, want via both", r)
		}
	}
}

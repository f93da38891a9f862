package fib

import (
	"context"
	"net/netip"
	"testing"
)

func applyHeld(t testing.TB, tb *Table) {
	t.Helper()
	if err := tb.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// adopted is what a previous switchd left: n routes over one next hop,
// as a dump reports them.
func adopted(n int) []Route {
	rs := manySet(n, gw4a)
	for i := range rs {
		rs[i].NextHops[0].Ifindex = 2
		rs[i].Normalize()
	}
	return rs
}

// relearned is batch i of routes BGP hands over after a restart: new
// prefixes (10.0.0.0/8 upwards), so each needs a write.
func relearned(i, n int) []Route {
	rs := make([]Route, n)
	for j := range rs {
		x := i*n + j
		a := netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)})
		rs[j] = Route{Key: RouteKey{Dst: netip.PrefixFrom(a, 32)}, NextHops: []NextHop{{Gateway: gw4b}}}
	}
	return rs
}

// After a restart that adopted many routes, the stale routes the sweep
// hold keeps cost the Applies of re-learning nothing: plan looks only at
// the keys that need a write. Once the hold ends, the stale routes are
// deleted, and the counts (Pending, InSync, Stale) tell the truth
// throughout.
func TestSweepHoldKeepsStaleOutOfPlan(t *testing.T) {
	const n = 100000
	fake := &fakeDataplane{kernel: adopted(n)}
	tb := newTable(MainTable, withDataplane(fake), WithSweepHold())
	applyHeld(t, tb) // the start-up dump adopts them
	if tb.Stale() != n || tb.Pending() != n || tb.InSync() || len(fake.ops) != 0 {
		t.Fatalf("after adopting: stale %d pending %d in sync %v ops %d, want %d stale and pending, not in sync, no write",
			tb.Stale(), tb.Pending(), tb.InSync(), len(fake.ops), n)
	}
	// BGP re-learns: some adopted routes again, some new ones.
	mustSet(t, tb, adopted(n)[:10]...)
	mustSet(t, tb, relearned(0, 100)...)
	applyHeld(t, tb)
	if tb.planned != 100 || len(fake.ops) != 100 {
		t.Errorf("Apply while re-learning planned %d keys and wrote %d, want the 100 new routes only", tb.planned, len(fake.ops))
	}
	if tb.Stale() != n-10 || tb.Pending() != n-10 {
		t.Errorf("stale %d pending %d, want %d each", tb.Stale(), tb.Pending(), n-10)
	}
	// A stale route that leaves the kernel (someone deleted it) is no
	// longer stale.
	tb.OnRouteEvent(RouteEvent{Deleted: true, Route: adopted(n)[n-1]})
	if tb.Stale() != n-11 {
		t.Errorf("stale %d after one stale route left the kernel, want %d", tb.Stale(), n-11)
	}
	// Inputs complete: the rest goes.
	fake.ops = nil
	tb.EndOfInputs()
	mustApply(t, tb)
	if len(fake.ops) != n-11 || tb.planned != n-11 || !tb.InSync() || tb.Stale() != 0 {
		t.Errorf("sweep: %d writes, planned %d, in sync %v, stale %d; want %d deletes", len(fake.ops), tb.planned, tb.InSync(), tb.Stale(), n-11)
	}
}

// BenchmarkApplyWhileRelearning: a restart adopted 100,000 routes (held
// stale); BGP hands over 1,000 new routes per Apply. ns/op is one Apply
// (bookkeeping only: a fake dataplane).
func BenchmarkApplyWhileRelearning(b *testing.B) {
	const n, batch = 100000, 1000
	fake := &fakeDataplane{kernel: adopted(n)}
	tb := newTable(MainTable, withDataplane(fake), WithSweepHold())
	applyHeld(b, tb)
	i := 0
	for b.Loop() {
		b.StopTimer()
		mustSet(b, tb, relearned(i%4000, batch)...)
		fake.ops = fake.ops[:0]
		i++
		b.StartTimer()
		if err := tb.Apply(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if tb.Stale() != n {
		b.Fatalf("stale %d, want %d", tb.Stale(), n)
	}
}

package fib

import (
	"context"
	"testing"
	"time"
)

// TestPrivilegedGatewayLookupCached: a gateway's interface is looked up
// once, not once per write; a route change of another owner, which the
// Kernel's Monitor sees, makes the next write look again.
// monitoredTable is a Kernel on tp's router with a Monitor and a Table
// (nexthop groups) of the main table.
func monitoredTable(t *testing.T, tp *topo, opts ...Opt) (*Kernel, *Monitor, *Table) {
	t.Helper()
	k := openKernel(t, tp.r)
	m, err := k.NewMonitor(MainTable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return k, m, newKernelTable(t, k, MainTable, ModeNexthopGroups, opts...)
}

func TestPrivilegedGatewayLookupCached(t *testing.T) {
	tp := newTopo(t, "gwcache")
	k, _, tb := monitoredTable(t, tp)
	lookups := func() uint64 { return tb.dp.(*nhManager).gws.lookups }
	mustSet(t, tb, route("198.51.100.0/24", 0, gw4a))
	mustApply(t, tb)
	if n := lookups(); n != 1 {
		t.Fatalf("%d lookups for one gateway, want 1", n)
	}
	mustSet(t, tb, route("198.51.101.0/24", 0, gw4a))
	mustApply(t, tb)
	mustSet(t, tb, route("198.51.102.0/24", 0, gw4a, gw4b))
	mustApply(t, tb)
	if n := lookups(); n != 2 {
		t.Fatalf("%d lookups after writes over a known gateway and a new one, want 2", n)
	}

	gen := k.routeGen.Load()
	if _, err := tp.r.Run(context.Background(), "ip", "route", "add", "10.50.0.0/24", "via", "192.0.2.3", "proto", "static"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); k.routeGen.Load() == gen; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the monitor never saw the foreign route")
		}
	}
	mustSet(t, tb, route("198.51.103.0/24", 0, gw4a))
	mustApply(t, tb)
	if n := lookups(); n != 3 {
		t.Errorf("%d lookups after a foreign route change, want 3 (the gateway looked up again)", n)
	}
	wantGateways(t, tp, "198.51.103.0/24", "192.0.2.1@a0")
}

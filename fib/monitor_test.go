package fib

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// feed waits for the monitor's events and hands them to the table until
// cond holds. The deadline only guards against a hang; it asserts no speed.
func feed(t *testing.T, m *Monitor, tb *Table, cond func() bool) {
	t.Helper()
	guard := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-m.Kick():
			evs, resync := m.Drain()
			for _, ev := range evs {
				tb.OnRouteEvent(ev)
			}
			if resync {
				tb.QueueResync()
			}
		case <-guard:
			t.Fatal("the monitor never reported the change")
		}
	}
}

func TestPrivilegedMonitorRepairsDrift(t *testing.T) {
	tp := newTopo(t, "drift")
	ctx := context.Background()
	k := openKernel(t, tp.r)
	m, err := k.NewMonitor(MainTable)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tb := k.NewTable(MainTable)
	// The IPv6 ECMP route checks that its notification (one message with
	// all paths on this kernel) reads back as the route we wrote.
	mustSet(t, tb, route("198.51.100.0/24", 0, gw4a, gw4b), route("2001:db8:100::/48", 0, gw6a),
		route("2001:db8:200::/48", 0, gw6a, gw6b))
	mustApply(t, tb)
	resyncs := tb.Stats().Resyncs

	// A foreign route changes nothing; our routes deleted and rewritten
	// behind switchd's back make the table pending.
	for _, argv := range [][]string{
		{"ip", "route", "add", "10.50.0.0/24", "via", "192.0.2.3", "proto", "static"},
		{"ip", "route", "del", "198.51.100.0/24", "proto", protoStr},
		{"ip", "-6", "route", "replace", "2001:db8:100::/48", "via", "2001:db8::3", "proto", protoStr},
	} {
		if _, err := tp.r.Run(ctx, argv...); err != nil {
			t.Fatal(err)
		}
	}
	feed(t, m, tb, func() bool { return tb.Pending() == 2 })
	mustApply(t, tb)
	if got := tb.Stats().Resyncs; got != resyncs {
		t.Errorf("repair took %d full dumps, want none", got-resyncs)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24"); len(rs) != 1 || !slices.Equal(gateways(rs[0]), []string{"192.0.2.1@a0", "192.0.2.3@a1"}) {
		t.Errorf("198.51.100.0/24 not restored: %+v", rs)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-6"), "2001:db8:100::/48"); len(rs) != 1 || !slices.Equal(gateways(rs[0]), []string{"2001:db8::1@a0"}) {
		t.Errorf("2001:db8:100::/48 not repaired: %+v", rs)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "10.50.0.0/24"); len(rs) != 1 || rs[0].Protocol != protoStatic {
		t.Errorf("foreign route touched: %+v", rs)
	}
	// The echoes of the repair leave the table in sync: draining whatever
	// the monitor holds now changes nothing.
	evs, _ := m.Drain()
	for _, ev := range evs {
		tb.OnRouteEvent(ev)
	}
	if !tb.InSync() {
		t.Errorf("echoes of the repair left %d keys pending", tb.Pending())
	}
}

// A bulk install with a Monitor attached: the kernel echoes every route
// written, and none of that may cost a full dump. With the kernel filter
// (the default) the echoes never reach the monitor; without it (the
// fallback) the monitor drops them itself. Drift repair works afterwards
// either way, from the one event that is not an echo.
func TestPrivilegedMonitorBulkInstallNoResync(t *testing.T) {
	for _, filter := range []bool{true, false} {
		t.Run(fmt.Sprintf("kernel-filter=%v", filter), func(t *testing.T) {
			defer func(old bool) { monitorKernelFilter = old }(monitorKernelFilter)
			monitorKernelFilter = filter
			testMonitorBulkInstall(t, filter)
		})
	}
}

func testMonitorBulkInstall(t *testing.T, filter bool) {
	n := 100000
	if testing.Short() {
		n = 20000 // still far above what the old bounded queue held (4096)
	}
	tp := newTopo(t, "bulkmon")
	ctx := context.Background()
	k := openKernel(t, tp.r)
	m, err := k.NewMonitor(MainTable)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tb := newKernelTable(t, k, MainTable, ModeNexthopGroups) // its writer registers after the monitor
	mustApply(t, tb)                                         // the start-up dump
	resyncs := tb.Stats().Resyncs
	rs := manySet(n, gw4a, gw4b)
	mustSet(t, tb, rs...)
	mustApply(t, tb)

	// A route of ours deleted behind switchd's back; its notification comes
	// after every echo of the install, so once the table sees it pending,
	// the monitor has passed all of them.
	victim := rs[n/2].Key.Dst.String()
	if _, err := tp.r.Run(ctx, "ip", "route", "del", victim, "proto", protoStr); err != nil {
		t.Fatal(err)
	}
	lost := false
	guard := time.After(60 * time.Second)
	for tb.Pending() == 0 {
		select {
		case <-m.Kick():
			evs, resync := m.Drain()
			for _, ev := range evs {
				tb.OnRouteEvent(ev)
			}
			lost = lost || resync
		case <-guard:
			t.Fatal("the deletion was never reported")
		}
	}
	if lost {
		t.Error("the monitor asked for a resync during a bulk install")
	}
	m.mu.Lock()
	echoes := m.echoes
	m.mu.Unlock()
	received := m.received.Load()
	t.Logf("monitor: %d messages received, %d echoes dropped in user space", received, echoes)
	if filter {
		// The deletion, and at most a few others (nothing but our own
		// writes happened).
		if received > 8 {
			t.Errorf("monitor received %d messages (%d echoes dropped in user space), want the one deletion: the kernel should drop the echoes", received, echoes)
		}
	} else if echoes < uint64(n) {
		t.Errorf("monitor dropped %d echoes, want at least %d (one per route written)", echoes, n)
	}
	if tb.Pending() != 1 {
		t.Fatalf("pending = %d after one drift, want 1", tb.Pending())
	}
	mustApply(t, tb)
	if got := tb.Stats().Resyncs; got != resyncs {
		t.Errorf("%d full dumps after the start-up one, want none", got-resyncs)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), victim); len(rs) != 1 {
		t.Errorf("%s not repaired: %+v", victim, rs)
	}
}

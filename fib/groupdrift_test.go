package fib

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestPrivilegedGroupMembersChangedBehindOurBack: someone rewrites the
// members of one of switchd's nexthop groups. The routes over it now
// forward differently from what the table believes, so the table must not
// stay in sync: the notification queues a resync, and the next Apply
// puts the members back (issue 7: in-sync true while the kernel differs).
func TestPrivilegedGroupMembersChangedBehindOurBack(t *testing.T) {
	tp := newTopo(t, "grpdrift")
	ctx := context.Background()
	k := openKernel(t, tp.r)
	m, err := k.NewMonitor(MainTable)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tb := newKernelTable(t, k, MainTable, ModeNexthopGroups)
	mustSet(t, tb, route("198.51.100.0/24", 0, gw4a, gw4b))
	mustApply(t, tb)
	groups, _ := nexthopIDs(t, tp)
	if len(groups) != 1 {
		t.Fatalf("groups %v, want 1", groups)
	}
	out, err := tp.r.Run(ctx, "ip", "nexthop", "show", "id", groups[0])
	if err != nil {
		t.Fatal(err)
	}
	// "id G group A/B proto 77": keep only the first member.
	f := strings.Fields(out)
	i := slices.Index(f, "group")
	if i < 0 || i+1 >= len(f) || !strings.Contains(f[i+1], "/") {
		t.Fatalf("group %s: %q, want two members", groups[0], out)
	}
	first := strings.Split(f[i+1], "/")[0]
	if _, err := tp.r.Run(ctx, "ip", "nexthop", "replace", "id", groups[0], "group", first, "proto", protoStr); err != nil {
		t.Fatal(err)
	}
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24"); len(rs) != 1 || len(gateways(rs[0])) != 1 {
		t.Fatalf("after the foreign rewrite: %+v, want one next hop", rs)
	}

	feed(t, m, tb, func() bool { return tb.resyncQueued })
	mustApply(t, tb)
	if rs := findRoutes(kernelRoutes(t, tp.r, "-4"), "198.51.100.0/24"); len(rs) != 1 || !slices.Equal(gateways(rs[0]), []string{"192.0.2.1@a0", "192.0.2.3@a1"}) {
		t.Errorf("198.51.100.0/24 not repaired: %+v", rs)
	}
	if !tb.InSync() {
		t.Errorf("after the repair %d keys pending", tb.Pending())
	}
}

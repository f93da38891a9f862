package fib

import (
	"context"
	"net/netip"
	"testing"
)

// TestPrivilegedNexthopFlushedWithLinkDown: the kernel deletes nexthop
// objects of a link that goes down, and the routes over them, without a
// notification. When the link and the next hop are back, the group that
// wants the old object must not fail for good ("Invalid nexthop id"):
// the write's failure makes the Table dump again and write what is
// missing, in the same round of Applies, and end in sync with the kernel.
func TestPrivilegedNexthopFlushedWithLinkDown(t *testing.T) {
	tp := newTopo(t, "nhflush")
	ctx := context.Background()
	tb := newModeTable(t, tp, ModeNexthopGroups)
	gwA, gwB := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::3")
	mustSet(t, tb, route("2001:db8:77::/64", 20, gwA, gwB))
	mustApply(t, tb)
	wantGateways(t, tp, "2001:db8:77::/64", "2001:db8::1@a0", "2001:db8::3@a1")

	run := func(argv ...string) {
		t.Helper()
		if out, err := tp.r.Run(ctx, argv...); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	// As the daemon does: the BGP session over a0 ends with the link.
	run("sysctl", "-qw", "net.ipv6.conf.a0.keep_addr_on_down=1")
	run("ip", "link", "set", "a0", "down")
	tb.NextHopDown(gwA)
	mustApply(t, tb)
	wantGateways(t, tp, "2001:db8:77::/64", "2001:db8::3@a1")

	run("ip", "link", "set", "a0", "up")
	tb.NextHopUp(gwA)
	var err error
	for range 3 { // the failed write, the resync, the rewrite
		if err = tb.Apply(ctx); err == nil && tb.InSync() {
			break
		}
	}
	if err != nil || !tb.InSync() {
		t.Fatalf("after the link came back: Apply %v, in sync %v", err, tb.InSync())
	}
	wantGateways(t, tp, "2001:db8:77::/64", "2001:db8::1@a0", "2001:db8::3@a1")
}

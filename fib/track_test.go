package fib

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// TestPrivilegedTrackNextHops: a gateway tracked for a routing protocol is
// reported unreachable while nothing resolves it and reachable once a
// route does, though no desired route uses it (the protocol rejected its
// paths); an on-link gateway is never reported.
func TestPrivilegedTrackNextHops(t *testing.T) {
	tp := newTopo(t, "track")
	ctx := context.Background()
	k := openKernel(t, tp.r)
	m, err := k.NewMonitor(MainTable, WithNextHopResolution())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tb := newKernelTable(t, k, MainTable, ModeNexthopGroups, WithNextHopResolution())
	mustApply(t, tb) // the first dump: resolution knows the table

	lo := lo4a
	onlink := netip.MustParseAddr("192.0.2.1")
	tb.TrackNextHops([]netip.Addr{lo, onlink})
	if got := tb.UnreachableNextHops(); !slices.Equal(got, []netip.Addr{lo}) {
		t.Fatalf("UnreachableNextHops = %v, want [%v]", got, lo)
	}
	reachable := func() bool {
		if err := tb.Apply(ctx); err != nil {
			t.Fatal(err)
		}
		return len(tb.UnreachableNextHops()) == 0
	}
	if _, err := tp.r.Run(ctx, "ip", "route", "add", "10.255.0.0/24", "via", "192.0.2.1", "proto", "static"); err != nil {
		t.Fatal(err)
	}
	feed(t, m, tb, reachable)
	if _, err := tp.r.Run(ctx, "ip", "route", "del", "10.255.0.0/24", "proto", "static"); err != nil {
		t.Fatal(err)
	}
	feed(t, m, tb, func() bool { return !reachable() })
	tb.TrackNextHops(nil)
	if got := tb.UnreachableNextHops(); len(got) != 0 {
		t.Errorf("after tracking nothing: UnreachableNextHops = %v, want none", got)
	}
}

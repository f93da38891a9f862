package fib

import (
	"net/netip"
	"slices"
)

// Next-hop tracking for a routing protocol. A BGP speaker must stop using
// and advertising paths whose next hop does not resolve, and learn when it
// resolves again; by then no desired route uses that next hop (the
// speaker rejected its paths), so resolution alone would have forgotten
// it. TrackNextHops keeps gateways under resolution whether or not a route
// uses them: they hang off one set of the Table's own that no route
// refers to, so every resolver change re-evaluates them with the rest.

// TrackNextHops replaces the set of gateways whose reachability
// UnreachableNextHops reports. Without WithNextHopResolution it does
// nothing.
func (t *Table) TrackNextHops(gws []netip.Addr) {
	rs := t.rs
	if rs == nil {
		return
	}
	nhs := make([]NextHop, 0, len(gws))
	for _, gw := range gws {
		if gw.IsValid() && !gw.IsUnspecified() {
			nhs = append(nhs, NextHop{Gateway: gw.Unmap()})
		}
	}
	slices.SortFunc(nhs, func(a, b NextHop) int { return a.Gateway.Compare(b.Gateway) })
	nhs = slices.CompactFunc(nhs, func(a, b NextHop) bool { return a.Gateway == b.Gateway })
	if rs.watch != nil {
		if slices.Equal(rs.watch.nhs, nhs) {
			return
		}
		t.untrack(rs.watch)
	}
	rs.watch = &nhSet{nhs: nhs}
	t.track(rs.watch)
}

// UnreachableNextHops returns the tracked gateways, and the gateways of
// desired routes, that are recursive and do not resolve now, sorted.
// Gateways on a link are reachable as far as the FIB can tell (a link
// without carrier ends its BGP sessions instead). Before the first dump
// nothing is known and nothing is reported.
func (t *Table) UnreachableNextHops() []netip.Addr {
	rs := t.rs
	if rs == nil || !rs.ready {
		return nil
	}
	var out []netip.Addr
	for gw, st := range rs.gws {
		if !st.onlink && len(st.nhs) == 0 {
			out = append(out, gw)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

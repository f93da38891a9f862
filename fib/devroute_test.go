package fib

import (
	"net/netip"
	"testing"
)

// TestPrivilegedDeviceRouteWithoutCarrier installs workload host routes
// (a /32 and /128 straight out of a device) on a link without carrier, as
// a VM's tap is before the VM runs: they go in inline, and a second Apply
// writes nothing.
func TestPrivilegedDeviceRouteWithoutCarrier(t *testing.T) {
	tp := newTopo(t, "devroute")
	// The peer end down takes a0's carrier away.
	p0, err := tp.peer.Handle().LinkByName("p0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.peer.Handle().LinkSetDown(p0); err != nil {
		t.Fatal(err)
	}
	tb := openKernel(t, tp.r).NewTable(MainTable)
	defer tb.Close()
	rs := []Route{
		{Key: RouteKey{Dst: netip.MustParsePrefix("198.51.100.7/32")}, NextHops: []NextHop{{Ifindex: tp.a0}}},
		{Key: RouteKey{Dst: netip.MustParsePrefix("2001:db8:7::7/128")}, NextHops: []NextHop{{Ifindex: tp.a0}}},
	}
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	for _, fam := range []string{"-4", "-6"} {
		found := false
		for _, r := range kernelRoutes(t, tp.r, fam) {
			if (r.Dst == "198.51.100.7" || r.Dst == "2001:db8:7::7") && r.Dev == "a0" && r.Protocol == protoStr {
				found = true
			}
		}
		if !found {
			t.Errorf("no switchd device route via a0 (no carrier) for %s: %+v", fam, kernelRoutes(t, tp.r, fam))
		}
	}
	before := tb.Stats().Writes()
	mustSet(t, tb, rs...)
	mustApply(t, tb)
	if w := tb.Stats().Writes() - before; w != 0 {
		t.Errorf("second Apply of the same device routes made %d writes", w)
	}
}

package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/switchd/bgp"
)

func TestNeighborsOn(t *testing.T) {
	nb := func(a string, enabled bool) bgp.Neighbor {
		return bgp.Neighbor{Address: netip.MustParseAddr(a), Enabled: enabled}
	}
	ns := []bgp.Neighbor{
		nb("10.0.0.1", true),   // on the link
		nb("10.0.0.0", true),   // our own address: not a neighbor on it
		nb("10.0.0.3", true),   // another /31
		nb("fd00::1", true),    // on the link, IPv6
		nb("10.255.0.9", true), // multihop, loopback
		nb("10.0.0.1", false),  // disabled: no session to end
		// Unnumbered: by interface, with it as zone.
		{Address: netip.MustParseAddr("fe80::2"), Interface: "swp1", Enabled: true},
		{Address: netip.MustParseAddr("fe80::%swp1"), Interface: "swp1", Enabled: true},
		{Address: netip.MustParseAddr("fe80::3"), Interface: "swp2", Enabled: true},
	}
	got := neighborsOn(ns, "swp1", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/31"), netip.MustParsePrefix("fd00::/127")})
	want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1"),
		netip.MustParseAddr("fe80::2%swp1"), netip.MustParseAddr("fe80::%swp1")}
	if !slices.Equal(got, want) {
		t.Errorf("neighborsOn = %v, want %v", got, want)
	}
}

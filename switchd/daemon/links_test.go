package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/platform"
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

// TestWiringUnreachableNeighbors: the speaker is told which neighbors lie
// on links without carrier, from the start (a link already down) and at
// every carrier change, so that its initial update does not wait for them.
func TestWiringUnreachableNeighbors(t *testing.T) {
	eth1 := platform.CarrierEvent{Index: 7, Name: "eth1", Prefixes: []netip.Prefix{pfx("10.0.1.0/31")}}
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1", "10.0.1.3", "10.255.0.9"}}, func(w *wired) {
		w.links.noCarrier[eth1.Index] = eth1
	})
	unreach := func() []netip.Addr {
		w.rec.mu.Lock()
		defer w.rec.mu.Unlock()
		return w.sp.unreachNbrs
	}
	if got := unreach(); !slices.Equal(got, []netip.Addr{addr("10.0.1.1")}) {
		t.Errorf("eth1 (10.0.1.0/31) down at the start: unreachable neighbors %v, want [10.0.1.1]", got)
	}

	up := eth1
	up.Carrier = true
	m := w.rec.mark()
	w.links.publish(up)
	w.rec.waitTurns(t, m, 1)
	if got := unreach(); len(got) != 0 {
		t.Errorf("eth1 up again: unreachable neighbors %v, want none", got)
	}

	m = w.rec.mark()
	w.links.publish(eth1)
	w.rec.waitTurns(t, m, 1)
	if got := unreach(); !slices.Equal(got, []netip.Addr{addr("10.0.1.1")}) {
		t.Errorf("eth1 lost carrier: unreachable neighbors %v, want [10.0.1.1]", got)
	}
}

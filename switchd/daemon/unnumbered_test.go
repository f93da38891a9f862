package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/switchd/bgp"
)

// TestWiringUnnumberedFailsafe: a neighbor the speaker reports by
// link-local address with its interface as zone (an unnumbered neighbor's
// discovered peer, which the config does not name) joins the failsafe
// neighbors, without zone; a change of its state alone changes nothing;
// when it is removed it leaves them.
func TestWiringUnnumberedFailsafe(t *testing.T) {
	w := startWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	// failsafe waits for the engine to be given the failsafe neighbors
	// and applied.
	failsafe := func(pm int, call string) {
		t.Helper()
		w.pe.rec.waitFor(t, pm, call+" and the policy Apply", func(calls []string) bool {
			i := index(calls, call)
			return i >= 0 && slices.Contains(calls[i:], "policy.Apply")
		})
	}
	pm := w.pe.rec.mark()
	peer := bgp.NeighborState{Address: netip.MustParseAddr("fe80::2%swp1"), PeerAS: 65000, State: bgp.StateEstablished}
	w.sp.publishNeighbors(peer)
	failsafe(pm, "policy.SetFailsafe neighbors [10.0.1.1 fe80::2] tcp [] udp [] gnmi 0")

	pm = w.pe.rec.mark()
	peer.State = bgp.StateActive
	w.sp.publishNeighbors(peer)
	peer.Removed = true
	w.sp.publishNeighbors(peer)
	failsafe(pm, "policy.SetFailsafe neighbors [10.0.1.1] tcp [] udp [] gnmi 0")
	// The state change (drained before the removal or with it) gave the
	// engine nothing.
	n := 0
	for _, c := range w.pe.rec.since(pm) {
		if strings.HasPrefix(c, "policy.SetFailsafe") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d SetFailsafe calls for a state change and a removal, want 1: %q", n, w.pe.rec.since(pm))
	}
}

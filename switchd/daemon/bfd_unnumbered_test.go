package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchd/switchd/switchd/bfd"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

// TestWiringBFDUnnumbered: the BFD template of a neighbor given by
// interface starts no session until the neighbor feed reports the peer
// discovered on that interface; then the session runs to that link-local
// address on the interface, and its failure marks the peer down in the
// FIB and holds the neighbor under the speaker's name for it (fe80::x%IF).
// The peer's address changing while failed lets go of the old one and
// starts the session to the new; the neighbor removed ends the session.
func TestWiringBFDUnnumbered(t *testing.T) {
	ctx := context.Background()
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, nil)
	e := &testBFD{rec: w.rec, kick: make(chan struct{}, 1), peers: map[bfd.Key]bfd.PeerConfig{}}
	w.d.bfd = e
	w.d.speaker = gatedSpeaker{w.sp}
	in := *w.d.intent
	in.BFD = []config.BFDSession{{PeerConfig: bfd.PeerConfig{Peer: config.DiscoverPeer, Interface: "swp1"},
		Neighbors: []netip.Addr{addr("fe80::%swp1")}, Discover: true}}
	w.d.intent = &in
	feed := func(what string, changed bool, ns []bgp.NeighborState, want ...string) {
		t.Helper()
		m := w.rec.mark()
		w.sp.publishNeighbors(ns...)
		if got := w.d.onNeighbors(ctx); got != changed {
			t.Errorf("%s: onNeighbors reports link peers changed: %v", what, got)
		}
		if got := w.rec.since(m); !slices.Equal(got, want) {
			t.Errorf("%s: calls %q, want %q", what, got, want)
		}
	}
	m := w.rec.mark()
	w.d.setBFD(ctx, &in)
	if got := w.rec.since(m); len(got) != 0 {
		t.Errorf("template before discovery: %q", got)
	}
	peer := bgp.NeighborState{Address: addr("fe80::2%swp1"), PeerAS: 65000, State: bgp.StateActive}
	feed("discovered", true, []bgp.NeighborState{peer}, "bfd.AddPeer fe80::2 on swp1")
	peer.State = bgp.StateEstablished
	feed("established", false, []bgp.NeighborState{peer})
	if st := w.d.status.load().BFD; st == nil || len(st.Sessions) != 1 || !slices.Equal(st.Sessions[0].Neighbors, []string{"fe80::2%swp1"}) {
		t.Errorf("status: %+v", st)
	}

	k := bfd.Key{Peer: addr("fe80::2"), Interface: "swp1"}
	step := bfdStep(t, w, e)
	step("failure", []bfd.Change{{Peer: k, Old: bfd.Up, New: bfd.Down, RemoteState: bfd.Up}},
		"fib.NextHopDown fe80::2", "fib.Apply",
		"bgp.HoldForBFD fe80::2%swp1", "bgp.DropNeighbor fe80::2%swp1", "fib.NextHopDown fe80::2", "fib.Apply")

	// The peer comes back with another link-local address (say, a new
	// interface on the other end): the old session and hold go.
	gone := peer
	gone.Removed = true
	moved := bgp.NeighborState{Address: addr("fe80::3%swp1"), PeerAS: 65000, State: bgp.StateActive}
	feed("moved", true, []bgp.NeighborState{gone, moved},
		"fib.NextHopUp fe80::2", "bgp.ReleaseBFD fe80::2%swp1", "bfd.RemovePeer fe80::2 on swp1", "bfd.AddPeer fe80::3 on swp1")
	moved.Removed = true
	feed("neighbor gone", true, []bgp.NeighborState{moved}, "bfd.RemovePeer fe80::3 on swp1")
}

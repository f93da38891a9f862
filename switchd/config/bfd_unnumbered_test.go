package config

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchd/switchd/switchd/bfd"
)

// TestBFDInterfaceNeighbors: a neighbor given by interface whose peer
// group has enable-bfd gets a session template (Discover: single hop on
// the interface, the peer to be discovered, held under the speaker's
// name fe80::%IF) with the group's timers, or else the /bfd interface's;
// a neighbor by link-local address on an interface is held under the
// speaker's name for it, the address with the interface as zone.
func TestBFDInterfaceNeighbors(t *testing.T) {
	m := bfdDoc(t)
	delete(at(t, ni(t, m), "protocols", "protocol", 2, "static-routes", "static", 0, "next-hops", "next-hop", 0), "enable-bfd")
	ifNeighbors(t, m, map[string]any{"interface": "swp1", "peer-group": "SPINE"})
	nbs := at(t, bgpTree(t, m), "neighbors")
	nbs["neighbor"] = append(nbs["neighbor"].([]any), map[string]any{
		"neighbor-address": "fe80::2",
		"config":           map[string]any{"neighbor-address": "fe80::2", "peer-group": "SPINE"},
		"transport":        map[string]any{"config": map[string]any{"local-address": "swp2"}},
	})
	sessions := func(what string) map[string]BFDSession {
		t.Helper()
		in, err := parseDoc(t, m)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		out := map[string]BFDSession{}
		for _, s := range in.BFD {
			out[s.Key().String()] = s
		}
		return out
	}
	ms := time.Millisecond
	got := sessions("group timers")
	want := map[string]BFDSession{
		"fe80:: on swp1": {PeerConfig: bfd.PeerConfig{Peer: DiscoverPeer, Interface: "swp1", DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms, DetectMult: 3},
			Neighbors: []netip.Addr{netip.MustParseAddr("fe80::%swp1")}, Discover: true},
		"fe80::2 on swp2": {PeerConfig: bfd.PeerConfig{Peer: netip.MustParseAddr("fe80::2"), Interface: "swp2", DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms, DetectMult: 3},
			Neighbors: []netip.Addr{netip.MustParseAddr("fe80::2%swp2")}},
	}
	for k, w := range want {
		if d := cmp.Diff(w, got[k], cmpOpts...); d != "" {
			t.Errorf("%s (-want +got):\n%s", k, d)
		}
	}
	// Without the group's timers, swp1's /bfd interface gives them.
	g := at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "enable-bfd")
	g["config"] = map[string]any{"enabled": true}
	s := sessions("interface timers")["fe80:: on swp1"]
	if s.DesiredMinTx != 300*ms || s.DetectMult != 4 || !s.Discover {
		t.Errorf("fe80:: on swp1 with /bfd/interfaces/interface[id=swp1]'s timers: %+v", s)
	}
}

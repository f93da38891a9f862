package bgp

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// waitPeerEvents collects s's peer events until want have arrived or
// patience ends, and returns all it saw.
func waitPeerEvents(t *testing.T, s *Speaker, want int, wait time.Duration) []PeerEvent {
	t.Helper()
	var got []PeerEvent
	deadline := time.After(wait)
	for len(got) < want {
		select {
		case <-s.PeerEvents():
			got = append(got, s.TakePeerEvents()...)
		case <-deadline:
			return got
		}
	}
	return got
}

// A neighbor without graceful restart dies (hold timer): the speaker
// reports it down, as its paths will be withdrawn, and up when it is back.
func TestPrivilegedPeerDownEvent(t *testing.T) {
	ns.Privileged(t)
	p := pfx("10.7.0.0/24")
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)}, Originate: []netip.Prefix{p},
	}
	nb := peer("127.0.0.1", "127.0.0.2", 65001)
	nb.Passive = true
	b := speaker(t, Config{ASN: 65002, RouterID: ip("10.0.0.2"), ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{nb}})
	rb := newRIB(b)
	kill := startChild(t, childSpec{Config: aCfg})
	rb.waitRoute(t, p, ip("127.0.0.1"))
	if evs := waitPeerEvents(t, b, 1, patience); !slices.Equal(evs, []PeerEvent{{Neighbor: ip("127.0.0.1"), Up: true}}) {
		t.Fatalf("peer events when A came up: %v, want A up", evs)
	}

	kill() // no NOTIFICATION: B notices by its hold timer
	if evs := waitPeerEvents(t, b, 1, patience); !slices.Equal(evs, []PeerEvent{{Neighbor: ip("127.0.0.1")}}) {
		t.Fatalf("peer events when A died: %v, want A down", evs)
	}
	rb.waitRoute(t, p) // and the paths do go

	startChild(t, childSpec{Config: aCfg})
	if evs := waitPeerEvents(t, b, 1, patience); !slices.Equal(evs, []PeerEvent{{Neighbor: ip("127.0.0.1"), Up: true}}) {
		t.Fatalf("peer events when A came back: %v, want A up", evs)
	}
	rb.waitRoute(t, p, ip("127.0.0.1"))
}

// With graceful restart negotiated, the death of a neighbor keeps its
// paths (stale): no down event.
func TestPrivilegedPeerDownGracefulNoEvent(t *testing.T) {
	ns.Privileged(t)
	p := pfx("10.8.0.0/24")
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), GracefulRestart: grFast, ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors: []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)}, Originate: []netip.Prefix{p},
	}
	nb := peer("127.0.0.1", "127.0.0.2", 65001)
	nb.Passive = true
	b := speaker(t, Config{ASN: 65002, RouterID: ip("10.0.0.2"), GracefulRestart: GracefulRestart{Enabled: true, HelperOnly: true},
		ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{nb}})
	rb := newRIB(b)
	kill := startChild(t, childSpec{Config: aCfg})
	rb.waitRoute(t, p, ip("127.0.0.1"))
	waitPeerEvents(t, b, 1, patience) // A up
	kill()
	waitNotEstablished(t, b, "127.0.0.1")
	if evs := waitPeerEvents(t, b, 1, time.Second); len(evs) != 0 {
		t.Errorf("peer events when a graceful-restart neighbor died: %v, want none (its paths stay)", evs)
	}
	rb.drainOnce(500 * time.Millisecond)
	if got := rb.routes[p]; len(got) == 0 {
		t.Errorf("helper dropped %v", p)
	}
}

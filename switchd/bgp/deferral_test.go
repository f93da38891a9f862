package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedRestartNotHeldByUnreachableNeighbor: a restarting speaker
// A has two graceful-restart neighbors, B, which is up, and C, whose link
// is down (SetUnreachableNeighbors) and which never comes up. Once B's
// initial update is in, A's initial update is over (Synced) and B gets
// A's routes: neither the sync timeout (an hour here) nor GoBGP's own
// deferral, which waited for every configured graceful-restart peer to come
// up, may hold them back.
func TestPrivilegedRestartNotHeldByUnreachableNeighbor(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	pa := pfx("10.1.0.0/24")
	nb := peer("127.0.0.1", "127.0.0.2", 65001)
	nb.Passive = true
	b := speaker(t, Config{ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp, GracefulRestart: grFast,
		ListenAddresses: []netip.Addr{ip("127.0.0.2")}, Neighbors: []Neighbor{nb}})
	rb := newRIB(b)

	a := New(WithLogger(testLogger(t)))
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	if err := a.SetRestarting(); err != nil {
		t.Fatal(err)
	}
	c := ip("127.0.0.9")
	a.SetUnreachableNeighbors([]netip.Addr{c})
	err := a.Apply(t.Context(), Config{ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp, GracefulRestart: grFast, SyncTimeout: time.Hour,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002), peer(c.String(), "127.0.0.1", 65009)},
		Originate:       []netip.Prefix{pa}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Synced():
	case <-time.After(patience):
		t.Fatalf("A's Synced still open %v after the start: it waits for %v, whose link is down", patience, c)
	}
	rb.waitRoute(t, pa, ip("127.0.0.1"))
	if st := neighborState(t, a, c); st.State == StateEstablished {
		t.Fatalf("%v is up: the test needs it down", c)
	}
}

package bgp

import (
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/switchd/switchd/sim/ns"
)

// adminDown reads GoBGP's admin state of neighbor addr.
func adminDown(t *testing.T, s *Speaker, addr string) bool {
	t.Helper()
	down := false
	err := s.srv.ListPeer(t.Context(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
		down = p.GetState().GetAdminState() != api.PeerState_ADMIN_STATE_UP
	})
	if err != nil {
		t.Fatal(err)
	}
	return down
}

// TestPrivilegedBFDHold: a neighbor held for BFD loses its paths at once
// although graceful restart is negotiated (a forwarding-plane failure is
// not a restart), stays down — administratively, through connection
// attempts from BIRD and through an Apply that changes it — and comes
// back with its paths when released. Without the gate in Apply the
// changed neighbor would connect again.
func TestPrivilegedBFDHold(t *testing.T) {
	ns.Privileged(t)
	p := pfx("10.50.0.0/24")
	startBIRDWith(t, birdSpec{Statics4: []netip.Prefix{p}, Options: "graceful restart on;"})
	cfg := birdConfig()
	cfg.GracefulRestart = GracefulRestart{Enabled: true, HelperOnly: true}
	s := speaker(t, cfg)
	r := newRIB(s)
	r.waitRoute(t, p, ip("10.99.0.2"))
	waitPeerEvents(t, s, 2, patience) // both sessions up

	if err := s.HoldForBFD(t.Context(), ip("10.99.0.2"), "bfd down"); err != nil {
		t.Fatal(err)
	}
	// Down first (DropNeighbor's), maybe again from the session's end.
	if evs := waitPeerEvents(t, s, 1, patience); len(evs) == 0 || evs[0] != (PeerEvent{Neighbor: ip("10.99.0.2")}) {
		t.Fatalf("peer events on hold: %v, want 10.99.0.2 down", evs)
	}
	r.waitRoute(t, p) // withdrawn, not kept stale
	if !s.BFDHeld(ip("10.99.0.2")) || !adminDown(t, s, "10.99.0.2") {
		t.Fatal("held neighbor is not administratively down")
	}
	// A changed neighbor is updated, still down.
	cfg.Neighbors[0].Description = "changed while held"
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// BIRD retries every second: three chances to connect.
	time.Sleep(3 * time.Second)
	if st := neighborState(t, s, ip("10.99.0.2")).State; st == StateEstablished || !adminDown(t, s, "10.99.0.2") {
		t.Fatalf("held neighbor: state %s, admin down %v", st, adminDown(t, s, "10.99.0.2"))
	}
	if n := neighborState(t, s, ip("fd99::2")); n.State != StateEstablished {
		t.Errorf("the other neighbor was touched: %+v", n)
	}

	if err := s.ReleaseBFD(t.Context(), ip("10.99.0.2")); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, s, "10.99.0.2")
	r.waitRoute(t, p, ip("10.99.0.2"))
}

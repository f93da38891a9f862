package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// HoldForBFD ends the session with neighbor addr now and withdraws every
// path learned from it (DropNeighbor: a forwarding-plane failure is not a
// restart, RFC 5882 §4.3), and keeps the neighbor administratively down —
// no connection attempts, incoming connections refused — until
// ReleaseBFD. A BGP session could otherwise come back over a path BFD has
// just found broken (TCP retransmits through loss that BFD's detection
// time does not tolerate) and be torn down again at the next failure: a
// flap loop. The hold survives Apply: a changed neighbor is added or
// updated administratively down while held.
func (s *Speaker) HoldForBFD(ctx context.Context, addr netip.Addr, why string) error {
	s.mu.Lock()
	if s.bfdHeld == nil {
		s.bfdHeld = make(map[netip.Addr]bool)
	}
	s.bfdHeld[addr] = true
	s.mu.Unlock()
	return s.DropNeighbor(ctx, addr, why)
}

// ReleaseBFD ends HoldForBFD: the neighbor (if configured and enabled)
// connects again as usual.
func (s *Speaker) ReleaseBFD(ctx context.Context, addr netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bfdHeld[addr] {
		return nil
	}
	delete(s.bfdHeld, addr)
	n, ok := s.peers[addr]
	if !ok || !n.Enabled || s.running == nil || s.stopped {
		return nil
	}
	s.log.Info("bgp neighbor released: its BFD session is up", "neighbor", addr)
	// Added afresh rather than enabled, so GoBGP's stored configuration
	// says enabled too (UpdatePeer compares against it).
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		return fmt.Errorf("release bgp neighbor %v: delete: %w", addr, err)
	}
	delete(s.peers, addr)
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: neighborAPI(n, s.localRestartingLocked(), s.deferral())}); err != nil {
		return fmt.Errorf("release bgp neighbor %v: add: %w", addr, err) // the next Apply adds it
	}
	s.peers[addr] = n
	s.since[addr] = time.Now()
	return nil
}

// BFDHeld reports whether neighbor addr is held down by HoldForBFD.
func (s *Speaker) BFDHeld(addr netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bfdHeld[addr]
}

// bfdGateLocked marks p, the GoBGP form of n, administratively down while
// n is held for BFD.
func (s *Speaker) bfdGateLocked(n Neighbor, p *api.Peer) *api.Peer {
	if s.bfdHeld[n.Address] {
		p.Conf.AdminDown = true
	}
	return p
}

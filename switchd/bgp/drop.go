package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// DropNeighbor ends the session with neighbor addr now and withdraws every
// path learned from it, stale or not, whatever graceful restart says; the
// neighbor stays configured and reconnects as usual. why is logged.
//
// It is the answer to failures that are not restarts: the link to a
// directly connected neighbor lost carrier (fast external failover), the
// hold timer expired, or a neighbor came back without graceful restart but
// GoBGP kept the capability of its previous session. GoBGP 4.8 (as 3.37)
// treats read/write failures and hold-timer expiry of a session that
// negotiated graceful restart as a restart and keeps the paths (fsm.go,
// established handler); its ResetPeer sends a Cease that may also end up
// as a graceful restart, and it never drops stale paths on request.
// Deleting the peer drops all of its paths at once (deleteNeighbor:
// dropAdjRIBIn) without a graceful-restart decision, so DropNeighbor
// deletes and adds it again.
//
// The session end is reported as a PeerEvent (Up false) first, so the fib
// stops using the neighbor as a next hop before the withdrawals arrive.
func (s *Speaker) DropNeighbor(ctx context.Context, addr netip.Addr, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr = s.discovered(addr)
	n, ok := s.peers[addr]
	if !ok || s.running == nil || s.stopped {
		return fmt.Errorf("drop bgp neighbor %v: not configured", addr)
	}
	s.log.Warn("bgp neighbor dropped: session ended, its paths withdrawn now", "neighbor", addr, "why", why)
	s.peerEv.add(PeerEvent{Neighbor: addr})
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		return fmt.Errorf("drop bgp neighbor %v: delete: %w", addr, err)
	}
	delete(s.peers, addr)
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.bfdGateLocked(n, neighborAPI(n, s.localRestartingLocked(), s.deferral()))}); err != nil {
		// The next Apply adds it again.
		return fmt.Errorf("drop bgp neighbor %v: add again: %w", addr, err)
	}
	s.peers[addr] = n
	s.since[addr] = time.Now()
	delete(s.limited, addr)
	return nil
}

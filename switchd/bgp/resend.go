package bgp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Routes that arrive while a session starts.
//
// GoBGP 4.8 sends a new session its routes while handling the session's
// Established state change (server.go handleFSMMessage,
// getBestFromLocalCallback), on that neighbor's FSM goroutine under a
// shared read lock, and publishes the new state (fsm.go,
// fsm.state.Store) only after that returns. Other neighbors' UPDATEs are
// handled meanwhile on their own FSM goroutines: their propagation asks
// the new session's published state (needToAdvertise), finds it not yet
// Established and skips the neighbor, leaving no mark that anything is
// owed. A path that enters the Loc-RIB after the initial send has passed
// it and before the state is published never reaches the new neighbor,
// until it changes again. At fabric start a leaf whose sessions to a host
// and to a spine came up in the same millisecond never sent the spine
// the host's loopback: every session up, one route missing for good.
//
// So once ListPeer, which reads the published state, shows a session that
// the watch reported Established, the speaker soft-resets it outbound
// once: GoBGP sends that neighbor all its routes again. Those already sent
// change nothing there; one the race skipped arrives. Not while GoBGP
// defers updates for our graceful restart (LocalRestarting): the session
// stays pending until the deferral ends.

// newSessions are the neighbors whose sessions the watch reported
// Established and that have not been sent their routes again since.
type newSessions struct {
	mu      sync.Mutex // guards pending
	pending map[netip.Addr]bool
}

// onPeerEvent notes a session that became Established; it runs on the
// watch goroutine.
func (n *newSessions) onPeerEvent(ev *apiutil.WatchEventMessage_PeerEvent) {
	a := ev.Peer.Conf.NeighborAddress
	if ev.Type != apiutil.PEER_EVENT_STATE || !a.IsValid() || sessionStateFromFSM(ev.Peer.State.SessionState) != StateEstablished {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pending == nil {
		n.pending = make(map[netip.Addr]bool)
	}
	n.pending[a.Unmap()] = true
}

// waiting reports whether some session is pending.
func (n *newSessions) waiting() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending) > 0
}

// due takes the pending neighbors that peers (a ListPeer answer) show
// Established and not deferring updates.
func (n *newSessions) due(peers []*api.Peer) []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []netip.Addr
	for _, p := range peers {
		a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil || !n.pending[a.Unmap()] {
			continue
		}
		if p.GetState().GetSessionState() != api.PeerState_SESSION_STATE_ESTABLISHED || p.GetGracefulRestart().GetLocalRestarting() {
			continue
		}
		delete(n.pending, a.Unmap())
		out = append(out, a)
	}
	return out
}

// resendToNewSessions sends the neighbors whose sessions peers shows
// newly Established all our routes again (see above). A failed reset is
// logged; the session is not retried (it was up: what GoBGP refused is a
// neighbor gone meanwhile, whose next session is noted anew).
func (s *Speaker) resendToNewSessions(srv *server.BgpServer, peers []*api.Peer) {
	for _, a := range s.newSess.due(peers) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT})
		cancel()
		if err != nil {
			s.log.Warn("bgp: routes not sent again to a new session", "neighbor", a, "err", err)
		}
	}
}

package bgp

import (
	"net/netip"
	"sync"
)

// Peer events for prefix-independent failover.
//
// When a session leaves Established and GoBGP will withdraw the
// neighbor's paths, the fib can stop using the neighbor as a next hop at
// once (fib.Table.NextHopDown), long before a million per-prefix
// withdrawals have come through the watch. The watch itself is too late
// for that: GoBGP (3.37, and 4.8 alike) handles a session's end on its
// Serve goroutine by withdrawing every path first (v4: dropAdjRIBIn →
// propagateUpdate) and only then broadcasting the peer state event, so
// the watch delivers the event (v4's OnPeerUpdate) after all the
// withdrawals. The earliest sign is the FSM
// goroutine's "Peer Down" log record, written just before it hands the
// state change to Serve, with the reason. So the speaker's GoBGP logger
// watches for it (and for "Peer Up", so that a session that comes back
// ends the mark in order).
//
// Which ends withdraw the paths (pkg/server, handleFSMMessage): every end
// except reason "graceful-restart". That reason is given when graceful
// restart was negotiated with the neighbor and the session ended without a
// NOTIFICATION (read/write failure), by the hold timer, or by a
// NOTIFICATION other than Hard Reset with the N bit negotiated; then the
// paths are kept as stale (of the families the neighbor preserves; the
// others are dropped, which the per-prefix withdrawals handle: no event is
// sent then). A neighbor that is helper-only on our side still negotiates
// the capability, so its restarts keep paths as well. Not covered: the
// stale paths a restart timer finally drops (no log record then), and
// next hops other than the neighbor's address (third-party next hops).

// PeerEvent is a session of a neighbor that went down in a way that makes
// GoBGP withdraw all of its paths (Up false), or that came up (Up true).
type PeerEvent struct {
	Neighbor netip.Addr
	Up       bool
}

// peerEvents collects PeerEvents for the consumer, in order.
type peerEvents struct {
	kick chan struct{}

	mu      sync.Mutex // guards the fields below
	events  []PeerEvent
	stopped bool
}

func newPeerEvents() *peerEvents { return &peerEvents{kick: make(chan struct{}, 1)} }

func (p *peerEvents) add(ev PeerEvent) {
	p.mu.Lock()
	if p.stopped || ev.Neighbor == sentinelAddr {
		p.mu.Unlock()
		return
	}
	p.events = append(p.events, ev)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *peerEvents) take() []PeerEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	evs := p.events
	p.events = nil
	return evs
}

// stop drops every later event: a speaker that stops takes all its
// sessions down, which is no failure of the neighbors.
func (p *peerEvents) stop() {
	p.mu.Lock()
	p.stopped = true
	p.events = nil
	p.mu.Unlock()
}

// PeerEvents signals (coalesced) that TakePeerEvents has something new.
func (s *Speaker) PeerEvents() <-chan struct{} { return s.peerEv.kick }

// TakePeerEvents returns the peer events since the last call, oldest
// first.
func (s *Speaker) TakePeerEvents() []PeerEvent { return s.peerEv.take() }

// peerEventLogger reads the session records of the speaker's GoBGP
// logger (log.go): "Peer Down" and "Peer Up" become PeerEvents, whatever
// the log level.
//
// Why records and not GoBGP v4's OnPeerUpdate: v4.8 is no different from
// v3 here. handleFSMMessage (pkg/server/server.go) withdraws a session's
// paths (dropAdjRIBIn → propagateUpdate, which queues the best-path events)
// before broadcastPeerState queues the state event, on the same watcher,
// so OnPeerUpdate reports the end after every withdrawal. The FSM
// goroutine writes "Peer Down" (fsm.go loop) before it hands the state
// change to the server.
type peerEventLogger struct {
	ev    *peerEvents
	notes *sessionNotes // sessions.go
}

// Record texts and fields of GoBGP v4.8's FSM (pkg/server/fsm.go; "Key"
// is added by peer.go's Logger.With).
const (
	gobgpPeerDown        = "Peer Down"
	gobgpPeerUp          = "Peer Up"
	gobgpGracefulRestart = "graceful-restart"
	gobgpFieldNeighbor   = "Key"
	gobgpFieldDownReason = "Reason"
)

// sessionMessage reports whether a GoBGP record is one peerEventLogger
// reads.
func sessionMessage(msg string) bool {
	switch msg {
	case gobgpPeerDown, gobgpPeerUp, gobgpHoldExpired, gobgpPrefixLimit, gobgpConnectFailed:
		return true
	}
	return false
}

package bgp

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
)

// The neighbor state feed: what the speaker knows about each configured
// neighbor, kept in memory so that a reader (status, telemetry) needs no
// GoBGP call, and published as it changes.
//
// Sources, each on its own goroutine:
//   - session state from GoBGP's peer watch (the same WatchEvent as the
//     best paths), in order; Established transitions are counted here;
//   - the last error from the session records of the speaker's GoBGP
//     logger (sessions.go), which come before the state change they
//     explain;
//   - prefix and message counts and negotiated families from the
//     monitor's ListPeer (sync.go), so they lag: once synced by up to
//     a second while they change, by up to lookIdle (10 s) on a quiet
//     node. The advertised count is not there: GoBGP counts it only by
//     walking the RIB (Neighbors does, on request).
//   - the configured neighbors from Apply.
type neighborFeed struct {
	kick chan struct{}

	mu      sync.Mutex // guards the fields below
	stopped bool
	state   map[netip.Addr]*NeighborState
	changed map[netip.Addr]struct{}
}

func newNeighborFeed() *neighborFeed {
	return &neighborFeed{
		kick:    make(chan struct{}, 1),
		state:   make(map[netip.Addr]*NeighborState),
		changed: make(map[netip.Addr]struct{}),
	}
}

// changedLocked marks addr changed and signals.
func (f *neighborFeed) changedLocked(addr netip.Addr) {
	f.changed[addr] = struct{}{}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// update runs fn on the state of a configured neighbor and publishes it if
// fn reports a change.
func (f *neighborFeed) update(addr netip.Addr, fn func(*NeighborState) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns, ok := f.state[addr]
	if f.stopped || !ok || ns.Removed {
		return
	}
	if fn(ns) {
		f.changedLocked(addr)
	}
}

// configure adds the neighbors of peers (new ones start Idle) and, with
// removeOthers, removes the others (published once with Removed set).
// Apply adds the neighbors it is about to configure before it does, so
// that no state event of theirs comes before they are known, and removes
// what it did not configure after.
func (f *neighborFeed) configure(peers map[netip.Addr]Neighbor, removeOthers bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	for a, n := range peers {
		ns, ok := f.state[a]
		switch {
		case !ok:
			f.state[a] = &NeighborState{Address: a, PeerAS: n.PeerAS, State: StateIdle}
		case ns.Removed || ns.PeerAS != n.PeerAS:
			ns.Removed, ns.PeerAS = false, n.PeerAS
		default:
			continue
		}
		f.changedLocked(a)
	}
	for a, ns := range f.state {
		if _, ok := peers[a]; removeOthers && !ok && !ns.Removed {
			// A new value, not a change in place: drained copies share
			// nothing mutable with it.
			f.state[a] = &NeighborState{Address: a, PeerAS: ns.PeerAS, Removed: true,
				EstablishedTransitions: ns.EstablishedTransitions, LastEstablished: ns.LastEstablished, LastError: ns.LastError}
			f.changedLocked(a)
		}
	}
}

// onPeerEvent takes a state change from GoBGP's peer watch.
func (f *neighborFeed) onPeerEvent(ev *apiutil.WatchEventMessage_PeerEvent, now time.Time) {
	a := ev.Peer.Conf.NeighborAddress
	if ev.Type != apiutil.PEER_EVENT_STATE || !a.IsValid() {
		return
	}
	st := sessionStateFromFSM(ev.Peer.State.SessionState)
	f.update(a.Unmap(), func(ns *NeighborState) bool {
		if st == ns.State {
			return false
		}
		if st == StateEstablished {
			ns.EstablishedTransitions++
			ns.LastEstablished, ns.EstablishedSince = now, now
		} else {
			ns.EstablishedSince = time.Time{}
			ns.NegotiatedFamilies = nil
		}
		ns.State = st
		return true
	})
}

// onError records a neighbor's latest failure.
func (f *neighborFeed) onError(addr netip.Addr, text string) {
	f.update(addr, func(ns *NeighborState) bool {
		changed := ns.LastError != text
		ns.LastError = text
		return changed
	})
}

// onPeers takes prefix counts, message counts and negotiated families
// from a ListPeer and reports whether any changed.
// Maps and slices are replaced, never changed in place: drained copies
// share them.
func (f *neighborFeed) onPeers(peers []*api.Peer) (changed bool) {
	for _, p := range peers {
		got, err := neighborStateFromAPI(p)
		if err != nil {
			continue
		}
		f.update(got.Address, func(ns *NeighborState) bool {
			if ns.State != StateEstablished {
				got.NegotiatedFamilies = nil // the watch has the newer state
			}
			if maps.Equal(ns.PrefixesReceived, got.PrefixesReceived) && maps.Equal(ns.PrefixesAccepted, got.PrefixesAccepted) &&
				slices.Equal(ns.NegotiatedFamilies, got.NegotiatedFamilies) && ns.Messages == got.Messages {
				return false
			}
			ns.Messages = got.Messages
			ns.PrefixesReceived, ns.PrefixesAccepted = got.PrefixesReceived, got.PrefixesAccepted
			ns.NegotiatedFamilies = got.NegotiatedFamilies
			changed = true
			return true
		})
	}
	return changed
}

// drain returns the neighbors changed since the last drain, sorted by
// address, and forgets removed ones.
func (f *neighborFeed) drain() []NeighborState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.changed) == 0 {
		return nil
	}
	out := make([]NeighborState, 0, len(f.changed))
	for a := range f.changed {
		ns := f.state[a]
		out = append(out, *ns)
		if ns.Removed {
			delete(f.state, a)
		}
	}
	clear(f.changed)
	slices.SortFunc(out, func(a, b NeighborState) int { return a.Address.Compare(b.Address) })
	return out
}

// all returns every configured neighbor's state, sorted by address.
func (f *neighborFeed) all() []NeighborState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]NeighborState, 0, len(f.state))
	for _, ns := range f.state {
		if !ns.Removed {
			out = append(out, *ns)
		}
	}
	slices.SortFunc(out, func(a, b NeighborState) int { return a.Address.Compare(b.Address) })
	return out
}

// get returns one neighbor's state.
func (f *neighborFeed) get(addr netip.Addr) (NeighborState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns, ok := f.state[addr]
	if !ok {
		return NeighborState{}, false
	}
	return *ns, true
}

// stop ends the feed: a speaker that stops takes every session down,
// which is no news about the neighbors.
func (f *neighborFeed) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
}

// NeighborUpdates signals (coalesced) that DrainNeighbors has something
// new.
func (s *Speaker) NeighborUpdates() <-chan struct{} { return s.nbrs.kick }

// DrainNeighbors returns, sorted by address, the state of every neighbor
// whose state changed since the previous call: session state, the count
// of transitions to Established, the last error, prefixes received and
// accepted, UPDATE and NOTIFICATION counts, negotiated families. A neighbor no longer configured appears
// once more, with Removed set. Prefix counts lag (see neighborFeed);
// PrefixesSent is not filled (see Neighbors). Maps and slices are shared
// and must not be modified.
func (s *Speaker) DrainNeighbors() []NeighborState { return s.nbrs.drain() }

// NeighborStates returns the feed's current state of every configured
// neighbor, sorted by address, from memory.
func (s *Speaker) NeighborStates() []NeighborState { return s.nbrs.all() }

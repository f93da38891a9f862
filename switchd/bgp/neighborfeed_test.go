package bgp

import (
	"net/netip"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/switchd/switchd/sim/ns"
)

// feedReader follows a speaker's neighbor feed like a status reader.
type feedReader struct {
	s    *Speaker
	last map[netip.Addr]NeighborState
}

// waitFor drains the feed until addr's latest state satisfies ok.
func (r *feedReader) waitFor(t *testing.T, addr netip.Addr, what string, ok func(NeighborState) bool) NeighborState {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if ns, seen := r.last[addr]; seen && ok(ns) {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("neighbor feed: %v never %s; last %+v", addr, what, r.last[addr])
		}
		select {
		case <-r.s.NeighborUpdates():
		case <-time.After(time.Second):
		}
		for _, ns := range r.s.DrainNeighbors() {
			r.last[ns.Address] = ns
		}
	}
}

// TestPrivilegedNeighborFeed: the feed reports a BIRD neighbor's session
// coming up (one transition to Established, its prefixes), going down when
// BIRD is killed (with the error), and its removal from the config, with
// no GoBGP call on the reader's side.
func TestPrivilegedNeighborFeed(t *testing.T) {
	ns.Privileged(t)
	b := startBIRD(t, []netip.Prefix{pfx("10.50.0.0/24")}, nil)
	start := time.Now()
	s := speaker(t, birdConfig())
	r := &feedReader{s: s, last: map[netip.Addr]NeighborState{}}
	bird := ip("10.99.0.2")

	up := r.waitFor(t, bird, "established with its prefix counted", func(n NeighborState) bool {
		return n.State == StateEstablished && n.PrefixesReceived[IPv4Unicast] == 1 && n.Messages.UpdatesReceived > 0
	})
	if up.EstablishedTransitions != 1 || up.LastEstablished.Before(start) || up.PeerAS != birdAS || up.PrefixesAccepted[IPv4Unicast] != 1 {
		t.Errorf("established neighbor = %+v, want 1 transition since the test started, AS %d, 1 prefix accepted", up, birdAS)
	}
	if len(up.NegotiatedFamilies) != 1 || up.NegotiatedFamilies[0] != IPv4Unicast {
		t.Errorf("negotiated families %v, want ipv4-unicast", up.NegotiatedFamilies)
	}
	if got := s.DrainNeighbors(); len(got) != 0 {
		t.Errorf("a second drain with nothing changed = %+v, want nothing", got)
	}
	if all := s.NeighborStates(); len(all) != 2 || all[0].Address != bird || all[0].State != StateEstablished {
		t.Errorf("NeighborStates = %+v, want BIRD's two neighbors, 10.99.0.2 established", all)
	}

	b.kill(t, syscall.SIGKILL)
	down := r.waitFor(t, bird, "down with an error", func(n NeighborState) bool {
		return n.State != StateEstablished && n.LastError != ""
	})
	if down.EstablishedTransitions != 1 || !down.EstablishedSince.IsZero() || down.LastEstablished != up.LastEstablished {
		t.Errorf("neighbor after BIRD was killed = %+v, want still 1 transition, not established since, last established %v", down, up.LastEstablished)
	}
	t.Logf("after the kill: state %s, last error %q", down.State, down.LastError)

	c := birdConfig()
	c.Neighbors = c.Neighbors[1:]
	if err := s.Apply(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	gone := r.waitFor(t, bird, "removed", func(n NeighborState) bool { return n.Removed })
	if gone.EstablishedTransitions != 1 {
		t.Errorf("removed neighbor's last report = %+v, want its history kept", gone)
	}
	if all := s.NeighborStates(); len(all) != 1 || all[0].Address == bird {
		t.Errorf("NeighborStates after the removal = %+v, want fd99::2 only", all)
	}
}

func TestNeighborFeedCoalescesAndCounts(t *testing.T) {
	f := newNeighborFeed()
	a := ip("192.0.2.1")
	f.configure(map[netip.Addr]Neighbor{a: {Address: a, PeerAS: 65002}}, true)
	evOf := func(a netip.Addr, st bgp.FSMState) *apiutil.WatchEventMessage_PeerEvent {
		return &apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE,
			Peer: apiutil.Peer{Conf: apiutil.PeerConf{NeighborAddress: a}, State: apiutil.PeerState{SessionState: st}}}
	}
	ev := func(st bgp.FSMState) *apiutil.WatchEventMessage_PeerEvent { return evOf(a, st) }
	t0 := time.Unix(1000, 0)
	for i, st := range []bgp.FSMState{bgp.BGP_FSM_ACTIVE, bgp.BGP_FSM_ESTABLISHED, bgp.BGP_FSM_IDLE, bgp.BGP_FSM_ESTABLISHED} {
		f.onPeerEvent(ev(st), t0.Add(time.Duration(i)*time.Second))
	}
	f.onPeerEvent(ev(bgp.BGP_FSM_ESTABLISHED), t0.Add(time.Hour)) // no change
	f.onPeerEvent(evOf(ip("192.0.2.9"), bgp.BGP_FSM_ESTABLISHED), t0)
	got := f.drain()
	if len(got) != 1 {
		t.Fatalf("drain = %+v, want one coalesced state of %v (an unconfigured address is ignored)", got, a)
	}
	if n := got[0]; n.State != StateEstablished || n.EstablishedTransitions != 2 || !n.LastEstablished.Equal(t0.Add(3*time.Second)) || n.PeerAS != 65002 {
		t.Errorf("state = %+v, want established, 2 transitions, last at t0+3s, AS 65002", n)
	}
	if got := f.drain(); got != nil {
		t.Errorf("second drain = %+v, want nothing", got)
	}
	// Message counts come with the ListPeer; unchanged counts are no news.
	peer := &api.Peer{Conf: &api.PeerConf{NeighborAddress: a.String()}, State: &api.PeerState{
		SessionState: api.PeerState_SESSION_STATE_ESTABLISHED, Messages: &api.Messages{
			Received: &api.Message{Update: 7, Notification: 1, Keepalive: 30},
			Sent:     &api.Message{Update: 3, Keepalive: 31}}}}
	f.onPeers([]*api.Peer{peer})
	want := MessageCounts{UpdatesReceived: 7, UpdatesSent: 3, NotificationsReceived: 1}
	if got := f.drain(); len(got) != 1 || got[0].Messages != want {
		t.Errorf("drain after a ListPeer = %+v, want messages %+v", got, want)
	}
	f.onPeers([]*api.Peer{peer})
	if got := f.drain(); got != nil {
		t.Errorf("drain after the same ListPeer = %+v, want nothing", got)
	}
	f.configure(nil, true)
	if got := f.drain(); len(got) != 1 || !got[0].Removed || got[0].EstablishedTransitions != 2 {
		t.Errorf("drain after removal = %+v, want one Removed report keeping its history", got)
	}
	if got := f.all(); len(got) != 0 {
		t.Errorf("all after removal = %+v, want none", got)
	}
}

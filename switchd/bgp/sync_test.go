package bgp

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// syncPeer is an established IPv4 neighbor as GoBGP's ListPeer reports it
// after the OPEN: graceful restart negotiated for IPv4, GoBGP's
// End-of-RIB mark set (as it sets it at an OPEN with the R bit when
// restarting), and the R bit in its capability if rbit.
func syncPeer(addr string, rbit bool) *api.Peer {
	var flags uint32
	if rbit {
		flags = 0x08
	}
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: addr},
		State: &api.PeerState{SessionState: api.PeerState_SESSION_STATE_ESTABLISHED, RemoteCap: []*api.Capability{
			{Cap: &api.Capability_MultiProtocol{MultiProtocol: &api.MultiProtocolCapability{Family: apiFamilyV4}}},
			{Cap: &api.Capability_GracefulRestart{GracefulRestart: &api.GracefulRestartCapability{Flags: flags, Time: 120,
				Tuples: []*api.GracefulRestartCapabilityTuple{{Family: apiFamilyV4}}}}},
		}},
		AfiSafis: []*api.AfiSafi{{
			Config:            &api.AfiSafiConfig{Family: apiFamilyV4, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{State: &api.MpGracefulRestartState{Enabled: true, Received: true, EndOfRibReceived: true}},
		}},
	}
}

// TestSyncRestartBitWaitsForEndOfRIB: a neighbor whose OPEN set the Restart
// State bit (FRR for 120 s after its start) has not finished its initial
// update until its End-of-RIB arrives on the watch, whatever GoBGP's mark
// says; a session's end forgets the End-of-RIB of that session. Without
// the R bit the mark is trusted.
func TestSyncRestartBitWaitsForEndOfRIB(t *testing.T) {
	now := time.Now()
	frr, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	want := map[netip.Addr]bool{frr: true, other: true}
	peers := []*api.Peer{syncPeer(frr.String(), true), syncPeer(other.String(), false)}
	st := &syncState{start: now, deadline: now.Add(time.Minute), quiet: map[netip.Addr]quietMark{}, eors: newEORWatch()}

	done, waiting, _ := syncDone(peers, want, st, now, time.Second)
	if done || len(waiting) != 1 || waiting[0] != frr.String() {
		t.Fatalf("before any End-of-RIB: done %v, waiting %v; want waiting for %v only (its mark came with the R bit)", done, waiting, frr)
	}

	eor := func() {
		st.eors.onEOR(&apiutil.Path{Family: bgp.RF_IPv4_UC, PeerAddress: frr})
	}
	st.eors.onEOR(&apiutil.Path{Family: bgp.RF_IPv6_UC, PeerAddress: frr})
	if done, _, _ := syncDone(peers, want, st, now, time.Second); done {
		t.Fatalf("synced on an IPv6 End-of-RIB; the neighbor's IPv4 one is missing")
	}
	eor()
	done, waiting, how := syncDone(peers, want, st, now, time.Second)
	if !done || how[syncEoR] != 2 {
		t.Fatalf("after its IPv4 End-of-RIB: done %v, waiting %v, how %v; want done, both by End-of-RIB", done, waiting, how)
	}

	down := &apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE}
	down.Peer.Conf.NeighborAddress = frr
	down.Peer.State.SessionState = bgp.BGP_FSM_IDLE
	st.eors.onPeer(down)
	if done, _, _ := syncDone(peers, want, st, now, time.Second); done {
		t.Fatalf("synced on the End-of-RIB of a session that has ended")
	}
}

// TestLookPace: once synced, the monitor looks every second while there
// is news or its looks find changes, backs off to lookIdle while they
// find nothing, and is back at a second with the next news.
func TestLookPace(t *testing.T) {
	var p lookPace
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if !p.due(at(0), false) {
		t.Fatal("first look not due")
	}
	p.looked(at(0), false)
	// Idle: the gaps double from a second up to lookIdle.
	now := time.Duration(0)
	var gaps []time.Duration
	for range 8 {
		last := now
		for !p.due(at(now), false) {
			now += lookTick
			if now-last > 2*lookIdle {
				t.Fatalf("no look due for %v after the last one", now-last)
			}
		}
		gaps = append(gaps, now-last)
		p.looked(at(now), false)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, lookIdle, lookIdle, lookIdle, lookIdle}
	if !slices.Equal(gaps, want) {
		t.Errorf("idle gaps between looks %v, want %v", gaps, want)
	}
	// News: due a second after the last look, and so on while it lasts.
	if p.due(at(now+lookTick/2), true) {
		t.Error("look due half a second after the last one")
	}
	if !p.due(at(now+lookTick), true) {
		t.Error("news: no look a second after the last one")
	}
	p.looked(at(now+lookTick), false)
	if !p.due(at(now+3*lookTick), false) {
		t.Error("after news: the back-off did not start again from a second")
	}
	// A look that found a change keeps the pace at a second.
	p.looked(at(now+3*lookTick), true)
	if !p.due(at(now+4*lookTick), false) {
		t.Error("a look that found a change: no look a second later")
	}
}

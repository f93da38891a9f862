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

// TestLookPace: once synced, the monitor sleeps until a look is due: a
// second after news or a look that found changes, then doubling up to
// lookIdle while the looks find nothing; a second at a time while busy.
func TestLookPace(t *testing.T) {
	var p lookPace
	now := time.Unix(1000, 0)
	if w := p.wait(now, false); w != lookTick {
		t.Errorf("wait before the first look %v, want %v", w, lookTick)
	}
	now = now.Add(lookTick)
	if !p.due(now, false) {
		t.Fatal("first look not due")
	}
	p.looked(now, false)
	// Idle: the sleeps double from 2 s up to lookIdle, each ending in a
	// look due.
	var gaps []time.Duration
	for range 7 {
		w := p.wait(now, false)
		now = now.Add(w)
		if !p.due(now, false) {
			t.Fatalf("no look due after sleeping %v", w)
		}
		gaps = append(gaps, w)
		p.looked(now, false)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, lookIdle, lookIdle, lookIdle, lookIdle}
	if !slices.Equal(gaps, want) {
		t.Errorf("idle sleeps between looks %v, want %v", gaps, want)
	}
	// Busy: a second at a time, whatever the interval.
	if w := p.wait(now, true); w != lookTick {
		t.Errorf("busy: wait %v, want %v", w, lookTick)
	}
	// News a second after the last look: due, and the back-off starts
	// again from a second.
	if p.due(now.Add(lookTick/2), true) {
		t.Error("look due half a second after the last one")
	}
	now = now.Add(lookTick)
	if !p.due(now, true) {
		t.Error("news: no look a second after the last one")
	}
	p.looked(now, false)
	if w := p.wait(now, false); w != 2*time.Second {
		t.Errorf("after news: sleep %v, want 2s", w)
	}
	// A look that found a change keeps the pace at a second.
	p.looked(now, true)
	if w := p.wait(now, false); w != lookTick {
		t.Errorf("after a change: sleep %v, want %v", w, lookTick)
	}
	// Woken late (a kick's look came between): no negative sleep.
	if w := p.wait(now.Add(time.Minute), false); w != 0 {
		t.Errorf("overdue: sleep %v, want 0", w)
	}
}

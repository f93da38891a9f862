package bgp

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedNewSessionSentRoutesAgain: GoBGP 4.8 can skip a new
// session for a path that arrives while it starts (resend.go), so once
// GoBGP shows a new session Established the speaker sends it its routes a
// second time (a soft reset out, in GoBGP's log), and the neighbor's
// routes stay as they were.
func TestPrivilegedNewSessionSentRoutesAgain(t *testing.T) {
	ns.Privileged(t)
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"),
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)},
		Originate:       []netip.Prefix{pfx("10.1.0.0/24"), pfx("10.1.1.0/24")},
	}
	bCfg := Config{
		ASN: 65002, RouterID: ip("10.0.0.2"),
		ListenAddresses: []netip.Addr{ip("127.0.0.2")},
		Neighbors:       []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)},
	}
	var log lockedBuffer
	a := New(WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	// As speakers does: both servers started before any session.
	if err := a.Apply(t.Context(), Config{ASN: aCfg.ASN, RouterID: aCfg.RouterID, ListenAddresses: aCfg.ListenAddresses}); err != nil {
		t.Fatal(err)
	}
	b := speakers(t, bCfg)[0]
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	rb := newRIB(b)
	rb.waitRoute(t, pfx("10.1.0.0/24"), ip("127.0.0.1"))
	rb.waitRoute(t, pfx("10.1.1.0/24"), ip("127.0.0.1"))
	const resent = `msg="Neighbor soft reset out"`
	deadline := time.Now().Add(patience)
	for !strings.Contains(log.String(), resent) {
		if time.Now().After(deadline) {
			t.Fatalf("A never sent B's new session its routes again (no %s in A's log):\n%s", resent, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := strings.Count(log.String(), resent); n != 1 || !strings.Contains(log.String(), resent+" component=gobgp Topic=Operation Key=127.0.0.2") {
		t.Errorf("A's soft resets out = %d, want one, of 127.0.0.2:\n%s", n, log.String())
	}
	rb.drainOnce(time.Second)
	if len(rb.routes) != 2 {
		t.Errorf("B's routes after the resend = %v, want A's two", rb.routes)
	}
}

// lockedBuffer is a log sink safe for GoBGP's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNewSessionsDueOnceEstablished: a session the watch reported
// Established is due once ListPeer shows it Established and GoBGP is not
// deferring updates to it, and then only once.
func TestNewSessionsDueOnceEstablished(t *testing.T) {
	var n newSessions
	ev := func(addr string, st bgp.FSMState) *apiutil.WatchEventMessage_PeerEvent {
		e := &apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE}
		e.Peer.Conf.NeighborAddress = ip(addr)
		e.Peer.State.SessionState = st
		return e
	}
	listed := func(addr string, st api.PeerState_SessionState, restarting bool) *api.Peer {
		return &api.Peer{
			Conf:            &api.PeerConf{NeighborAddress: addr},
			State:           &api.PeerState{SessionState: st},
			GracefulRestart: &api.GracefulRestart{LocalRestarting: restarting},
		}
	}
	est := api.PeerState_SESSION_STATE_ESTABLISHED
	n.onPeerEvent(ev("10.0.0.1", bgp.BGP_FSM_ESTABLISHED))
	n.onPeerEvent(ev("10.0.0.2", bgp.BGP_FSM_ESTABLISHED))
	n.onPeerEvent(ev("10.0.0.3", bgp.BGP_FSM_OPENCONFIRM))
	// Not yet published, deferring, never reported Established.
	peers := []*api.Peer{
		listed("10.0.0.1", api.PeerState_SESSION_STATE_OPENCONFIRM, false),
		listed("10.0.0.2", est, true),
		listed("10.0.0.3", est, false),
	}
	if got := n.due(peers); len(got) != 0 {
		t.Fatalf("due = %v, want none", got)
	}
	peers[0], peers[1] = listed("10.0.0.1", est, false), listed("10.0.0.2", est, false)
	if got := n.due(peers); len(got) != 2 || got[0] != ip("10.0.0.1") || got[1] != ip("10.0.0.2") {
		t.Fatalf("due = %v, want 10.0.0.1 and 10.0.0.2", got)
	}
	if got := n.due(peers); len(got) != 0 {
		t.Fatalf("due again = %v, want none", got)
	}
}

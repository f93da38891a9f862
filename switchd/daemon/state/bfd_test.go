package state

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchd/switchd/switchd/bfd"
)

// TestTreeBFD: sessions under /bfd/interfaces/interface[id=link]/peers/
// peer[local-discriminator=N] (multihop under id=any), with state,
// diagnostics and counters that validate against the schema; a session
// gone is deleted.
func TestTreeBFD(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub).WithClock(func() time.Time { return t0 })
	single := bfd.Session{Config: bfd.PeerConfig{Peer: netip.MustParseAddr("10.0.0.0"), Interface: "swp1"},
		State: bfd.Down, RemoteState: bfd.Up, LocalDiscr: 7, RemoteDiscr: 9, LocalDiag: bfd.DiagDetectionTimeExpired,
		RemoteRequiredMinRx: 100 * time.Millisecond, UpCount: 1, DownCount: 1, LastDown: t0, RxPackets: 30, TxPackets: 31}
	multi := bfd.Session{Config: bfd.PeerConfig{Peer: netip.MustParseAddr("10.255.0.2"), Local: netip.MustParseAddr("10.255.0.1"), Multihop: true},
		State: bfd.Up, RemoteState: bfd.Up, LocalDiscr: 8}
	if err := tr.BFD([]bfd.Session{single, multi}); err != nil {
		t.Fatal(err)
	}
	const sp = "bfd/interfaces/interface[id=swp1]/peers/peer[local-discriminator=7]/state/"
	const mp = "bfd/interfaces/interface[id=any]/peers/peer[local-discriminator=8]"
	up, _ := pub.take()
	for k, v := range map[string]string{sp + "session-state": "DOWN", sp + "remote-session-state": "UP",
		sp + "local-diagnostic-code": "DETECTION_TIMEOUT", sp + "remote-address": "10.0.0.0",
		sp + "remote-minimum-receive-interval": "100000", sp + "failure-transitions": "1",
		sp + "async/received-packets": "30", mp + "/state/local-address": "10.255.0.1", mp + "/state/session-state": "UP"} {
		if up[k] != v {
			t.Errorf("%s = %q, want %q", k, up[k], v)
		}
	}
	if _, ok := up[sp+"last-failure-time"]; !ok {
		t.Error("no last-failure-time")
	}
	rfc7951(t, BFDPeer(single))
	if err := tr.BFD([]bfd.Session{single}); err != nil {
		t.Fatal(err)
	}
	if up, del := pub.take(); len(up) != 0 || !slices.Equal(del, []string{mp}) {
		t.Errorf("multihop session gone: published %v, deleted %v", up, del)
	}
}

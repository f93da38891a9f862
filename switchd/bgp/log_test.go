package bgp

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

// TestGoBGPHandlerReadsSessionRecords: GoBGP v4 logs through slog, naming
// the peer with Logger.With("Key", …); its "Peer Down" and "Peer Up"
// records become PeerEvents and session notes whatever the speaker's log
// level, a graceful-restart end is no PeerEvent, and records still reach
// the speaker's handler at its level.
func TestGoBGPHandlerReadsSessionRecords(t *testing.T) {
	var out bytes.Buffer
	ev, notes := newPeerEvents(), newSessionNotes(nil)
	pl := peerEventLogger{ev: ev, notes: notes}
	l := slog.New(&gobgpHandler{next: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}), on: pl.sessionRecord})
	peer := l.With(slog.String("Topic", "Peer"), slog.String("Key", "192.0.2.1"))
	peer.Info("Peer Up")
	peer.Info("Peer Down", slog.String("State", "BGP_FSM_ESTABLISHED"), slog.String("Reason", "notification-received"))
	l.With(slog.String("Key", "192.0.2.2")).Info("Peer Down", slog.String("Reason", "graceful-restart"))
	peer.Warn("hold timer expired", slog.String("State", "BGP_FSM_OPENSENT")) // no paths then: not acted on
	peer.Info("some other record")

	a := netip.MustParseAddr("192.0.2.1")
	want := []PeerEvent{{Neighbor: a, Up: true}, {Neighbor: a}}
	if got := ev.take(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("peer events = %v, want %v", got, want)
	}
	recs := notes.take()
	if len(recs) != 3 || recs[2].kind != recGRDown || recs[2].addr != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("session records = %+v, want up, down, and a graceful-restart end of 192.0.2.2", recs)
	}
	if le := notes.last(a); !strings.Contains(le.text, "notification-received") {
		t.Errorf("last error of %v = %q, want the reason of its end", a, le.text)
	}
	if s := out.String(); strings.Contains(s, "Peer Up") || !strings.Contains(s, "hold timer expired") || !strings.Contains(s, "Key=192.0.2.1") {
		t.Errorf("speaker's log at warn:\n%s\nwant the hold-timer record with its Key and no info records", s)
	}
}

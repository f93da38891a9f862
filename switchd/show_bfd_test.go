package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bfd"
	"github.com/switchd/switchd/switchd/daemon/state"
)

// TestShowBFD: show bfd lists the sessions the daemon's renderer
// published, by peer address, a multihop one under "any"; with none it
// is an empty table.
func TestShowBFD(t *testing.T) {
	sock, s := startServer(t, gnmi.Options{Schema: oc.LazySchemaTree()["Device"]})
	if out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "bfd"); strings.Count(out, "\n") != 1 {
		t.Errorf("show bfd with no sessions: %q", out)
	}
	err := state.New(s).BFD([]bfd.Session{
		{Config: bfd.PeerConfig{Peer: netip.MustParseAddr("10.1.1.0"), Interface: "swp1"}, State: bfd.Down, RemoteState: bfd.Up,
			LocalDiscr: 7, RemoteDiscr: 9, LocalDiag: bfd.DiagDetectionTimeExpired, UpCount: 1, DownCount: 1, LastDown: time.Now(), RxPackets: 30, TxPackets: 31},
		{Config: bfd.PeerConfig{Peer: netip.MustParseAddr("10.255.0.2"), Local: netip.MustParseAddr("10.255.0.1"), Multihop: true},
			State: bfd.Up, RemoteState: bfd.Up, LocalDiscr: 8, RemoteDiscr: 3, UpCount: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "bfd")
	if got := strings.Join(lineWith(out, "10.1.1.0"), " "); got != "10.1.1.0 - swp1 down up detection_timeout 7 9 1 1 30 31" {
		t.Errorf("show bfd: 10.1.1.0 line %q\n%s", got, out)
	}
	if got := strings.Join(lineWith(out, "10.255.0.2"), " "); got != "10.255.0.2 10.255.0.1 any up up - 8 3 1 0 0 0" {
		t.Errorf("show bfd: 10.255.0.2 line %q\n%s", got, out)
	}
	if strings.Index(out, "10.1.1.0") > strings.Index(out, "10.255.0.2") {
		t.Errorf("show bfd: not in address order\n%s", out)
	}
	js, _ := switchd(t, 0, "show", "--gnmi-socket", sock, "bfd", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(js), &rows); err != nil || len(rows) != 2 || rows[0]["state"] != "down" || rows[0]["failures"] != 1.0 {
		t.Errorf("show bfd --json: %v %v", err, rows)
	}
}

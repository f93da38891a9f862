package sim

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/switchd/config"
)

// TestNodeManagement: every switchd node of the demo topology gets a gNMI
// socket of its own, passed to its daemon and set for commands run in its
// namespace (sim exec), and a metrics listener in its config, which
// switchd's loader accepts; sim status lists both.
func TestNodeManagement(t *testing.T) {
	topo, err := LoadTopology("topologies/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(topo, Options{Prefix: "swdtest", RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var status bytes.Buffer
	printManagement(&status, f)
	sockets := map[string]bool{}
	for _, n := range f.Nodes() {
		if n.Kind != Switchd {
			continue
		}
		if n.GNMISocket == "" || sockets[n.GNMISocket] {
			t.Fatalf("%s: gNMI socket %q, not one of its own", n.Name, n.GNMISocket)
		}
		sockets[n.GNMISocket] = true
		if i := slices.Index(f.argv(n), "--gnmi-socket"); i < 0 || f.argv(n)[i+1] != n.GNMISocket {
			t.Errorf("%s: daemon command line %v lacks --gnmi-socket %s", n.Name, f.argv(n), n.GNMISocket)
		}
		cmd, err := f.Command(context.Background(), n.Name, "true")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(cmd.Env, "SWITCHD_GNMI_SOCKET="+n.GNMISocket) {
			t.Errorf("%s: sim exec's environment lacks SWITCHD_GNMI_SOCKET=%s", n.Name, n.GNMISocket)
		}
		b, err := f.NodeConfig(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		in, err := config.Parse(b, "switchd.json")
		if err != nil {
			t.Fatalf("%s: config refused: %v", n.Name, err)
		}
		if want := (config.Metrics{Enabled: true, Address: netip.MustParseAddrPort(MetricsAddress)}); in.Metrics != want {
			t.Errorf("%s: metrics %+v, want %+v", n.Name, in.Metrics, want)
		}
		if !strings.Contains(status.String(), n.GNMISocket) {
			t.Errorf("sim status does not name %s's gNMI socket %s:\n%s", n.Name, n.GNMISocket, status.String())
		}
	}
	if len(sockets) == 0 {
		t.Fatal("no switchd node")
	}
	t.Logf("sim status:\n%s", status.String())
}

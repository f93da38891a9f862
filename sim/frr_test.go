package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/simtest"
)

// frrTriangle is birdTriangle with FRR on the spine and on leaf1: leaf1
// reaches leaf2 (BIRD) only through the spine, so a ping between their
// loopbacks proves that FRR's sessions, origination and zebra's kernel
// routes work, against FRR and against BIRD.
func frrTriangle(t *testing.T) *sim.Topology {
	return triangle(t, "frr-triangle", "frr", "frr", "bird")
}

// TestFRRConfig checks the generated frr.conf of a node: each link's two
// sessions, each activated in its own family only, the loopbacks
// announced, ECMP across ASes and graceful restart with the forwarding
// state kept.
func TestFRRConfig(t *testing.T) {
	f, err := sim.New(frrTriangle(t), sim.Options{Prefix: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.FRRConfig("spine1")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"router bgp 65000\n",
		" bgp router-id 10.255.0.1\n",
		" no bgp ebgp-requires-policy\n",
		" no bgp default ipv4-unicast\n",
		" bgp bestpath as-path multipath-relax\n",
		" bgp graceful-restart\n",
		" bgp graceful-restart preserve-fw-state\n",
		" timers bgp 3 9\n",
		" neighbor 10.254.0.0 remote-as 65001\n",
		" neighbor fd00:254:: remote-as 65001\n",
		" neighbor 10.254.0.2 remote-as 65002\n",
		" neighbor 10.254.0.0 timers connect 1\n",
		" address-family ipv4 unicast\n  network 10.255.0.1/32\n  neighbor 10.254.0.0 activate\n  neighbor 10.254.0.2 activate\n  maximum-paths 64\n",
		" address-family ipv6 unicast\n  network fd00:255::1/128\n  neighbor fd00:254:: activate\n  neighbor fd00:254::2 activate\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("frr.conf of spine1 lacks %q:\n%s", want, conf)
		}
	}
	if n := f.Node("spine1"); n.RouteProtocol() != sim.FRRProtocol || filepath.Base(n.Config) != "frr.conf" {
		t.Errorf("spine1: route protocol %d, config %s", n.RouteProtocol(), n.Config)
	}
	// The unnumbered variant leaves links of FRR nodes numbered, as BIRD's.
	u, err := sim.New(frrTriangle(t), sim.Options{Prefix: "t", Unnumbered: true})
	if err != nil {
		t.Fatal(err)
	}
	if ub, err := u.FRRConfig("spine1"); err != nil || string(ub) != conf {
		t.Errorf("unnumbered variant: spine1's frr.conf differs (%v):\n%s", err, ub)
	}
}

// TestFabricFRRPrivileged brings up FRR nodes beside BIRD: the fabric
// converges (sessions read from FRR, routes installed by zebra with
// protocol bgp), leaf1 pings leaf2 through the FRR spine, a graceful
// restart of the spine's bgpd keeps its zebra (and its routes), and Down
// stops zebra too.
func TestFabricFRRPrivileged(t *testing.T) {
	f := simtest.Start(t, frrTriangle(t))
	simtest.WaitConverged(t, f)
	ctx := context.Background()
	checkTriangle(t, f)

	zebra := zebraPID(t, f, "spine1")
	old := f.PID("spine1")
	if err := f.RestartGracefully(ctx, "spine1"); err != nil {
		t.Fatal(err)
	}
	if f.PID("spine1") == old || syscall.Kill(old, 0) == nil {
		t.Errorf("graceful restart of spine1: bgpd pid %d -> %d", old, f.PID("spine1"))
	}
	if z := zebraPID(t, f, "spine1"); z != zebra {
		t.Errorf("graceful restart of spine1 restarted zebra too: pid %d -> %d", zebra, z)
	}
	simtest.WaitConverged(t, f)
	if err := f.Ping(ctx, "leaf2", "leaf1", 6); err != nil {
		t.Error(err)
	}

	pids := append(f.PIDs(), zebra)
	if err := f.Down(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range simtest.Leftovers(f, pids) {
		t.Error(err)
	}
}

// zebraPID reads the pid file of the node's zebra.
func zebraPID(t *testing.T, f *sim.Fabric, node string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.Node(node).Dir, "zebra.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		t.Fatalf("%s: zebra pid %q not running (%v)", node, b, err)
	}
	return pid
}

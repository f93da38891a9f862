package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/config/configtest"
)

// transitConfig is switchd (AS 65001) between BIRD A (AS 65002), whose
// routes it imports, and BIRD B (AS 65003), with exportB as B's default
// export policy ("" for none). Graceful restart makes switchd end its
// initial UPDATEs to B with End-of-RIB.
func transitConfig(exportB configtest.Policy) []byte {
	return configtest.BGP{ASN: 65001, RouterID: "10.97.0.1", GracefulRestart: true, Neighbors: []configtest.Neighbor{
		{Address: "10.97.1.2", PeerAS: 65002, Description: "A", Hold: 9, Keepalive: 3, ConnectRetry: 1, Import: configtest.Accept},
		{Address: "10.97.2.2", PeerAS: 65003, Description: "B", Hold: 9, Keepalive: 3, ConnectRetry: 1, Export: exportB},
	}}.JSON()
}

// transitBird runs BIRD in n as AS as, peering with switchd at 10.97.x.1;
// statics are announced to it. It returns BIRD's control socket and log.
func transitBird(t *testing.T, n *ns.NS, local string, as int, statics ...string) (ctl, log string) {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	log = filepath.Join(dir, "bird.log")
	fmt.Fprintf(&b, "log %q all;\nrouter id %s;\nprotocol device {}\n", log, local)
	export := "none"
	if len(statics) > 0 {
		b.WriteString("protocol static s4 { ipv4;")
		for _, s := range statics {
			fmt.Fprintf(&b, " route %s blackhole;", s)
		}
		b.WriteString(" }\n")
		export = "where source = RTS_STATIC"
	}
	peer := strings.TrimSuffix(local, ".2") + ".1"
	fmt.Fprintf(&b, "protocol bgp sw { local %s as %d; neighbor %s as 65001; connect delay time 1; connect retry time 1; error wait time 1, 5;\n  graceful restart on; debug { packets };\n  ipv4 { import all; export %s; }; }\n", local, as, peer, export)
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl = filepath.Join(dir, "bird.ctl")
	if out, err := n.Run(t.Context(), "bird", "-c", conf, "-s", ctl, "-P", filepath.Join(dir, "bird.pid")); err != nil {
		t.Fatalf("bird in %s: %v\n%s", n.Name, err, out)
	}
	return ctl, log
}

// birdHas reports whether the BIRD at ctl has a route for p.
func birdHas(t *testing.T, ctl, p string) bool {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "birdc", "-s", ctl, "show", "route", "for", p).CombinedOutput()
	if strings.Contains(string(out), "Network not found") {
		return false
	}
	if err != nil {
		t.Fatalf("birdc show route for %s: %v\n%s", p, err, out)
	}
	return strings.Contains(string(out), p)
}

// TestNoTransitBetweenEBGPPeersPrivileged: the real daemon between two
// BIRD eBGP peers. It imports A's 192.0.2.0/24 (its import policy says
// so); B has no apply-policy, so nothing reaches B (REJECT_ROUTE, RFC
// 8212): B gets switchd's End-of-RIB, the end of its initial table, and
// not A's route. Once the config says default-export-policy ACCEPT_ROUTE
// for B and is reloaded, A's route reaches B.
func TestNoTransitBetweenEBGPPeersPrivileged(t *testing.T) {
	sw, a, b := ns.NewT(t, "transit-sw"), ns.NewT(t, "transit-a"), ns.NewT(t, "transit-b")
	for _, l := range []struct {
		peer         *ns.NS
		link         string
		local, peer4 string
	}{{a, "toa", "10.97.1.1/24", "10.97.1.2/24"}, {b, "tob", "10.97.2.1/24", "10.97.2.2/24"}} {
		if err := ns.Veth(sw, l.link, l.peer, "eth0"); err != nil {
			t.Fatal(err)
		}
		if err := sw.AddAddr(l.link, netip.MustParsePrefix(l.local)); err != nil {
			t.Fatal(err)
		}
		if err := l.peer.AddAddr("eth0", netip.MustParsePrefix(l.peer4)); err != nil {
			t.Fatal(err)
		}
	}
	bin := simtest.SwitchdBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, transitConfig(""), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := sw.Command(ctx, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"), "--state-dir", filepath.Join(dir, "state"))
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("switchd log:\n%s", logs.String())
		}
	})

	transitBird(t, a, "10.97.1.2", 65002, "192.0.2.0/24")
	waitFor(t, 60*time.Second, "switchd learns A's 192.0.2.0/24 into its kernel", func() error {
		_, dst, _ := net.ParseCIDR("192.0.2.0/24")
		rs, err := sw.Handle().RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		if err != nil || len(rs) == 0 {
			return fmt.Errorf("no route (%v)", err)
		}
		return nil
	})
	// B connects only now: switchd's initial UPDATEs to it hold its whole
	// table, A's route included, and end with End-of-RIB.
	ctlB, logB := transitBird(t, b, "10.97.2.2", 65003)
	waitFor(t, 60*time.Second, "B gets switchd's End-of-RIB", func() error {
		if l, _ := os.ReadFile(logB); !strings.Contains(string(l), "Got END-OF-RIB") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if birdHas(t, ctlB, "192.0.2.0/24") {
		t.Fatal("switchd re-advertised eBGP peer A's 192.0.2.0/24 to eBGP peer B with no policy saying so")
	}

	if err := os.WriteFile(cfg, transitConfig(configtest.Accept), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "with default-export-policy ACCEPT_ROUTE, B receives A's route", func() error {
		if !birdHas(t, ctlB, "192.0.2.0/24") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/config/configtest"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// TestBFDWithBIRDPrivileged: the daemon's BFD against BIRD's, one eBGP
// neighbor with enable-bfd (300 ms × 3), graceful restart on both sides
// and a hold time of 30 s. The peer's end of the link going silent takes
// the session down and BIRD's route out of switchd's kernel well before
// the hold time, and without the graceful-restart wait; healed, BFD, BGP
// and the route come back, BFD once (2 up transitions, 1 failure, still
// so 3 s later). (BIRD's disable of its bfd protocol sends no AdminDown,
// so the peer's AdminDown is left to TestWiringBFD and the engine's
// tests.)
func TestBFDWithBIRDPrivileged(t *testing.T) {
	sw, b := ns.NewT(t, "bfdb-sw"), ns.NewT(t, "bfdb-b")
	if err := ns.Veth(sw, "tob", b, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		n    *ns.NS
		link string
		p    string
	}{{sw, "tob", "10.96.1.1/24"}, {b, "eth0", "10.96.1.2/24"}} {
		if err := a.n.AddAddr(a.link, netip.MustParsePrefix(a.p)); err != nil {
			t.Fatal(err)
		}
	}
	var tree map[string]any // as JSON decodes it, to walk
	js, _ := json.Marshal(configtest.BGP{ASN: 65001, RouterID: "10.96.0.1", GracefulRestart: true, Neighbors: []configtest.Neighbor{
		{Address: "10.96.1.2", PeerAS: 65002, Hold: 30, Keepalive: 10, ConnectRetry: 1, Import: configtest.Accept},
	}}.Tree())
	if err := json.Unmarshal(js, &tree); err != nil {
		t.Fatal(err)
	}
	var nb map[string]any // the one neighbor's entry
	for _, k := range []string{"openconfig-network-instance:network-instances", "network-instance", "protocols", "protocol", "bgp", "neighbors", "neighbor"} {
		var v any = tree
		if nb != nil {
			v = nb
		}
		v = v.(map[string]any)[k]
		if l, ok := v.([]any); ok {
			v = l[0]
		}
		nb = v.(map[string]any)
	}
	nb["enable-bfd"] = map[string]any{"config": map[string]any{"enabled": true,
		"desired-minimum-tx-interval": 300000, "required-minimum-receive": 300000, "detection-multiplier": 3}}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	js, _ = json.Marshal(tree)
	if err := os.WriteFile(cfg, js, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "switchd.sock")
	d := startSwitchd(t, sw, simtest.SwitchdBinary(t), "run", "--config", cfg, "--socket", sock, "--state-dir", filepath.Join(dir, "state"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("switchd log:\n%s", d.logs.String())
		}
	})

	bdir := t.TempDir()
	conf := "log \"" + filepath.Join(bdir, "bird.log") + "\" all;\nrouter id 10.96.1.2;\nprotocol device {}\nprotocol static s4 { ipv4; route 192.0.2.0/24 blackhole; }\n" +
		"protocol bfd bfd1 { debug all; interface \"*\" { interval 300 ms; multiplier 3; }; }\n" +
		"protocol bgp sw { local 10.96.1.2 as 65002; neighbor 10.96.1.1 as 65001; bfd on; graceful restart on;\n" +
		"  hold time 30; keepalive time 10; connect delay time 1; connect retry time 1; error wait time 1, 2;\n" +
		"  ipv4 { import all; export where source = RTS_STATIC; }; }\n"
	if err := os.WriteFile(filepath.Join(bdir, "bird.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(bdir, "bird.ctl")
	if out, err := b.Run(t.Context(), "bird", "-c", filepath.Join(bdir, "bird.conf"), "-s", ctl, "-P", filepath.Join(bdir, "bird.pid")); err != nil {
		t.Fatalf("bird: %v\n%s", err, out)
	}
	routed := func() bool {
		_, dst, _ := net.ParseCIDR("192.0.2.0/24")
		rs, err := sw.Handle().RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		return err == nil && len(rs) > 0
	}
	// session is switchd's BFD session and BGP neighbor state.
	session := func() (apiclient.BFDSessionStatus, string, error) {
		if err := d.alive(); err != nil {
			t.Fatal(err)
		}
		st, err := apiclient.GetStatus(context.Background(), sock)
		if err != nil {
			return apiclient.BFDSessionStatus{}, "", err
		}
		var s apiclient.BFDSessionStatus
		if st.BFD != nil && len(st.BFD.Sessions) == 1 {
			s = st.BFD.Sessions[0]
		}
		state := ""
		for _, n := range st.BGP.Neighbors {
			state = n.State
		}
		return s, state, nil
	}
	up := func(what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() error {
			s, bgp, err := session()
			if err != nil {
				return err
			}
			if s.State != "Up" || bgp != "ESTABLISHED" || !routed() {
				return fmt.Errorf("BFD %+v, BGP %s, route %v", s, bgp, routed())
			}
			return nil
		})
	}
	up("BFD Up with BIRD, BGP established, BIRD's route in the kernel")

	// Silent: BIRD's end drops everything, the link stays up.
	nft := func(cmd string) {
		t.Helper()
		if out, err := b.Run(t.Context(), "nft", cmd); err != nil {
			t.Fatalf("nft %s: %v\n%s", cmd, err, out)
		}
	}
	nft("add table netdev switchd_test_silent; " +
		"add chain netdev switchd_test_silent in { type filter hook ingress device eth0 priority -500; policy drop; }; " +
		"add chain netdev switchd_test_silent out { type filter hook egress device eth0 priority -500; policy drop; }")
	waitFor(t, 10*time.Second, "BFD failure ends the session and withdraws the route, within a third of the hold time", func() error {
		s, bgp, err := session()
		if err != nil {
			return err
		}
		if !s.Failed || bgp == "ESTABLISHED" || routed() {
			return fmt.Errorf("BFD %+v, BGP %s, route %v", s, bgp, routed())
		}
		return nil
	})
	// Healed once BIRD has found the failure too: healed earlier, the two
	// state machines cross (one side still Up) and may take an extra turn
	// through Down.
	waitFor(t, 10*time.Second, "BIRD's BFD session down", func() error {
		out, err := b.Run(t.Context(), "birdc", "-s", ctl, "show", "bfd", "sessions")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "10.96.1.1" && f[2] != "Up" {
				return nil
			}
		}
		return fmt.Errorf("BIRD: %s", out)
	})
	nft("delete table netdev switchd_test_silent")
	up("after the fault, BFD Up, BGP established and the route back")

	// Once: one failure, and Up twice in all.
	time.Sleep(3 * time.Second) // ten transmit intervals
	if s, _, err := session(); err != nil || s.UpTransitions != 2 || s.FailureTransitions != 1 {
		t.Errorf("after the fault: BFD %+v (%v), want 2 up transitions and 1 failure", s, err)
	}
	if !strings.Contains(d.logs.String(), "BFD session failed") {
		t.Error("the silent failure was not logged as a BFD failure")
	}
}

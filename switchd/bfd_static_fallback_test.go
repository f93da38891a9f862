package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/bfd"
)

// staticFallbackConfig is a /24 over one gateway with BFD at 100 ms × 3
// and a covering /16 over another gateway without BFD.
const staticFallbackConfig = `{"openconfig-network-instance:network-instances": {"network-instance": [{"name": "DEFAULT",
 "config": {"name": "DEFAULT", "type": "openconfig-network-instance-types:DEFAULT_INSTANCE"},
 "protocols": {"protocol": [{"identifier": "openconfig-policy-types:BGP", "name": "BGP",
  "config": {"identifier": "openconfig-policy-types:BGP", "name": "BGP"},
  "bgp": {"global": {"config": {"as": 65001, "router-id": "10.96.0.1"}}}},
 {"identifier": "openconfig-policy-types:STATIC", "name": "STATIC",
  "config": {"identifier": "openconfig-policy-types:STATIC", "name": "STATIC"},
  "static-routes": {"static": [
   {"prefix": "192.0.2.0/24", "config": {"prefix": "192.0.2.0/24"}, "next-hops": {"next-hop": [
    {"index": "b", "config": {"index": "b", "next-hop": "10.96.2.2"},
     "enable-bfd": {"config": {"enabled": true, "desired-minimum-tx-interval": 100000, "required-minimum-receive": 100000}}}]}},
   {"prefix": "192.0.0.0/16", "config": {"prefix": "192.0.0.0/16"}, "next-hops": {"next-hop": [
    {"index": "a", "config": {"index": "a", "next-hop": "10.96.1.2"}}]}}]}}]}}]}}`

// TestStaticBFDFallbackPrivileged: a static route whose only gateway has
// BFD, and a less specific static route through another gateway. Both
// gateways answer for 192.0.2.1. The BFD gateway's link going silent
// (every packet dropped, carrier up) takes the specific route out of the
// kernel, and pings to 192.0.2.1 flow through the fallback gateway;
// healed, the specific route is back. Without the daemon's withholding
// the route would stay, pointing into the silent link.
func TestStaticBFDFallbackPrivileged(t *testing.T) {
	sw, ga, gb := ns.NewT(t, "bfdf-sw"), ns.NewT(t, "bfdf-ga"), ns.NewT(t, "bfdf-gb")
	if err := ns.Veth(sw, "toa", ga, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Veth(sw, "tob", gb, "eth0"); err != nil {
		t.Fatal(err)
	}
	addAddrs(t, nsAddr{sw, "toa", "10.96.1.1/24"}, nsAddr{ga, "eth0", "10.96.1.2/24"}, nsAddr{sw, "tob", "10.96.2.1/24"},
		nsAddr{gb, "eth0", "10.96.2.2/24"}, nsAddr{ga, "lo", "192.0.2.1/32"}, nsAddr{gb, "lo", "192.0.2.1/32"})
	e, err := bfd.New(bfd.WithNetNS(gb.Net()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.AddPeer(bfd.PeerConfig{Peer: netip.MustParseAddr("10.96.2.1"), Local: netip.MustParseAddr("10.96.2.2"), Interface: "eth0",
		DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	d := runSwitchdConfig(t, sw, staticFallbackConfig)
	ctx := context.Background()
	// via is the gateway sw's kernel takes to 192.0.2.1 and whether the
	// specific route is there; then a ping must get an answer.
	via := func(gw string, specific bool) func() error {
		return func() error {
			if err := d.alive(); err != nil {
				t.Fatal(err)
			}
			out, err := sw.Run(ctx, "ip", "route", "show", "192.0.2.0/24")
			if err != nil {
				return err
			}
			if strings.Contains(out, "via 10.96.2.2") != specific {
				return fmt.Errorf("192.0.2.0/24: %q, want it there: %v", out, specific)
			}
			if out, err = sw.Run(ctx, "ip", "route", "get", "192.0.2.1"); err != nil || !strings.Contains(out, "via "+gw) {
				return fmt.Errorf("route to 192.0.2.1: %q (%v), want via %s", out, err, gw)
			}
			if out, err := sw.Run(ctx, "ping", "-c", "1", "-W", "1", "192.0.2.1"); err != nil {
				return fmt.Errorf("ping 192.0.2.1: %v: %s", err, out)
			}
			return nil
		}
	}
	bfdUp := func() error {
		for _, s := range e.Sessions() {
			if s.State != bfd.Up {
				return fmt.Errorf("%v: %v", s.Config.Key(), s.State)
			}
		}
		return nil
	}
	waitFor(t, 30*time.Second, "BFD up, 192.0.2.1 via the BFD gateway 10.96.2.2", func() error {
		if err := bfdUp(); err != nil {
			return err
		}
		return via("10.96.2.2", true)()
	})

	nft := func(cmd string) {
		t.Helper()
		if out, err := gb.Run(ctx, "nft", cmd); err != nil {
			t.Fatalf("nft %s: %v\n%s", cmd, err, out)
		}
	}
	nft("add table netdev switchd_test_silent; " +
		"add chain netdev switchd_test_silent in { type filter hook ingress device eth0 priority -500; policy drop; }; " +
		"add chain netdev switchd_test_silent out { type filter hook egress device eth0 priority -500; policy drop; }")
	waitFor(t, 10*time.Second, "the /24 out of the kernel, 192.0.2.1 reached via the fallback 10.96.1.2", via("10.96.1.2", false))
	nft("delete table netdev switchd_test_silent")
	waitFor(t, 30*time.Second, "healed: the /24 back, 192.0.2.1 via 10.96.2.2 again", func() error {
		if err := bfdUp(); err != nil {
			return err
		}
		return via("10.96.2.2", true)()
	})
	if !strings.Contains(d.logs.String(), "static route withheld") {
		t.Errorf("no withholding logged")
	}
}

// nsAddr is an address for a link of a namespace.
type nsAddr struct {
	n            *ns.NS
	link, prefix string
}

func addAddrs(t *testing.T, addrs ...nsAddr) {
	t.Helper()
	for _, a := range addrs {
		if err := a.n.AddAddr(a.link, netip.MustParsePrefix(a.prefix)); err != nil {
			t.Fatal(err)
		}
	}
}

// runSwitchdConfig runs switchd in n on config (a file in a temporary
// directory, with its socket and state directory); its log is shown if
// the test fails.
func runSwitchdConfig(t *testing.T, n *ns.NS, config string) *runningSwitchd {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startSwitchd(t, n, simtest.SwitchdBinary(t), "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"), "--state-dir", filepath.Join(dir, "state"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("switchd log:\n%s", d.logs.String())
		}
	})
	return d
}

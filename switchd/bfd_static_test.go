package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/bfd"
)

// staticBFDConfig is a static route over two gateways, each with BFD at
// 100 ms × 3, beside a BGP speaker without neighbors (the daemon wants
// one).
const staticBFDConfig = `{"openconfig-network-instance:network-instances": {"network-instance": [{"name": "DEFAULT",
 "config": {"name": "DEFAULT", "type": "openconfig-network-instance-types:DEFAULT_INSTANCE"},
 "protocols": {"protocol": [{"identifier": "openconfig-policy-types:BGP", "name": "BGP",
  "config": {"identifier": "openconfig-policy-types:BGP", "name": "BGP"},
  "bgp": {"global": {"config": {"as": 65001, "router-id": "10.95.0.1"}}}},
 {"identifier": "openconfig-policy-types:STATIC", "name": "STATIC",
  "config": {"identifier": "openconfig-policy-types:STATIC", "name": "STATIC"},
  "static-routes": {"static": [{"prefix": "192.0.2.0/24", "config": {"prefix": "192.0.2.0/24"}, "next-hops": {"next-hop": [
   {"index": "a", "config": {"index": "a", "next-hop": "10.95.1.2"},
    "enable-bfd": {"config": {"enabled": true, "desired-minimum-tx-interval": 100000, "required-minimum-receive": 100000}}},
   {"index": "b", "config": {"index": "b", "next-hop": "10.95.1.3"},
    "enable-bfd": {"config": {"enabled": true, "desired-minimum-tx-interval": 100000, "required-minimum-receive": 100000}}}]}}]}}]}}]}}`

// TestStaticBFDPrivileged: a static route over two gateways with BFD on
// each (peers: a BFD engine in the gateways' namespace). One gateway's
// address going silent (its packets dropped, the link up) takes it out of
// the route in the kernel; healed, it is back in.
func TestStaticBFDPrivileged(t *testing.T) {
	sw, gw := ns.NewT(t, "bfds-sw"), ns.NewT(t, "bfds-gw")
	if err := ns.Veth(sw, "togw", gw, "eth0"); err != nil {
		t.Fatal(err)
	}
	addAddrs(t, nsAddr{sw, "togw", "10.95.1.1/24"}, nsAddr{gw, "eth0", "10.95.1.2/24"}, nsAddr{gw, "eth0", "10.95.1.3/24"})
	e, err := bfd.New(bfd.WithNetNS(gw.Net()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for _, local := range []string{"10.95.1.2", "10.95.1.3"} {
		if err := e.AddPeer(bfd.PeerConfig{Peer: netip.MustParseAddr("10.95.1.1"), Local: netip.MustParseAddr(local), Interface: "eth0",
			DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	d := runSwitchdConfig(t, sw, staticBFDConfig)
	// gateways are the route's next hops in sw's kernel, as ip prints them.
	gateways := func(want ...string) func() error {
		return func() error {
			if err := d.alive(); err != nil {
				t.Fatal(err)
			}
			out, err := sw.Run(context.Background(), "ip", "route", "show", "192.0.2.0/24")
			if err != nil {
				return err
			}
			for _, g := range []string{"10.95.1.2", "10.95.1.3"} {
				if strings.Contains(out, "via "+g) != contains(want, g) {
					return fmt.Errorf("route %q, want gateways %v", out, want)
				}
			}
			return nil
		}
	}
	upBoth := func(what string) {
		t.Helper()
		waitFor(t, 30*time.Second, what, func() error {
			for _, s := range e.Sessions() {
				if s.State != bfd.Up {
					return fmt.Errorf("%v: %v", s.Config.Key(), s.State)
				}
			}
			return gateways("10.95.1.2", "10.95.1.3")()
		})
	}
	upBoth("both sessions up, the route over both gateways")

	nft := func(cmd string) {
		t.Helper()
		if out, err := gw.Run(t.Context(), "nft", cmd); err != nil {
			t.Fatalf("nft %s: %v\n%s", cmd, err, out)
		}
	}
	nft("add table netdev switchd_test_silent; " +
		"add chain netdev switchd_test_silent in { type filter hook ingress device eth0 priority -500; policy accept; }; " +
		"add chain netdev switchd_test_silent out { type filter hook egress device eth0 priority -500; policy accept; }; " +
		"add rule netdev switchd_test_silent in ip daddr 10.95.1.3 drop; " +
		"add rule netdev switchd_test_silent out ip saddr 10.95.1.3 drop")
	waitFor(t, 10*time.Second, "10.95.1.3's session failed, the route over 10.95.1.2 only", gateways("10.95.1.2"))
	nft("delete table netdev switchd_test_silent")
	upBoth("healed: the route over both gateways again")
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

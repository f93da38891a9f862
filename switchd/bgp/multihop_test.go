package bgp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
)

// multihopBIRD puts BIRD two hops away: the test's namespace
// (10.97.1.1) - router (10.97.1.2 | 10.97.2.1) - BIRD (10.97.2.2), with
// static routes to the far subnet on both ends. BIRD sends with TTL 2
// (multihop 2) and exports 10.52.0.0/24; passive says whether BIRD waits
// for our connection (then our dialled socket's TTL decides) or dials
// itself (then the TTL of the socket we accept decides).
func multihopBIRD(t *testing.T, passive bool) *birdPeer {
	t.Helper()
	router, peerNS := ns.NewT(t, "rtr"), ns.NewT(t, "mhbird")
	cur := vethFromTest(t, "tortr", router)
	defer cur.Close()
	if err := ns.Veth(router, "eth1", peerNS, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		n    *ns.NS
		link string
		p    string
	}{
		{cur, "tortr", "10.97.1.1/24"}, {router, "eth0", "10.97.1.2/24"},
		{router, "eth1", "10.97.2.1/24"}, {peerNS, "eth0", "10.97.2.2/24"},
	} {
		if err := a.n.AddAddr(a.link, netip.MustParsePrefix(a.p)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := router.Run(t.Context(), "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("router forwarding: %v\n%s", err, out)
	}
	for _, r := range []struct {
		n       *ns.NS
		dst, gw string
	}{{cur, "10.97.2.0/24", "10.97.1.2"}, {peerNS, "10.97.1.0/24", "10.97.2.1"}} {
		dst := netip.MustParsePrefix(r.dst)
		gw := netip.MustParseAddr(r.gw)
		route := &netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)}, Gw: gw.AsSlice()}
		if err := r.n.Handle().RouteAdd(route); err != nil {
			t.Fatalf("route %v via %v in %s: %v", dst, gw, r.n.Name, err)
		}
	}
	mode := ""
	if passive {
		mode = "passive on;"
	}
	conf := fmt.Sprintf(`router id 10.97.2.2;
protocol device {}
protocol static s4 { ipv4; route 10.52.0.0/24 blackhole; }
protocol bgp mh { local 10.97.2.2 as %d; neighbor 10.97.1.1 as 65001; multihop 2; %s
  hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;
  startup hold time 3; # a connection whose OPEN from us never arrives (TTL 1) is not waited on for 240 s
  ipv4 { import all; export where source = RTS_STATIC; }; }
`, birdAS, mode)
	return runBIRD(t, peerNS, conf)
}

// ebgp-multihop: over two hops a session comes up with multihop-ttl 2 and
// not without it (eBGP sends with TTL 1), whichever side connects; the
// setting applied on reload reaches a neighbor that is trying to connect.
func TestPrivilegedEBGPMultihopTwoHops(t *testing.T) {
	ns.Privileged(t)
	for _, tc := range []struct {
		name         string
		birdPassive  bool
		ourPassive   bool
		ourTTLDecide string
	}{
		{"WeConnect", true, false, "dialled"},
		{"BIRDConnects", false, true, "accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := multihopBIRD(t, tc.birdPassive)
			nb := peer("10.97.2.2", "10.97.1.1", birdAS)
			nb.Passive = tc.ourPassive
			cfg := Config{ASN: 65001, RouterID: ip("10.97.1.1"), ListenAddresses: []netip.Addr{ip("10.97.1.1")}, Neighbors: []Neighbor{nb}}
			s := speaker(t, cfg)

			// Without multihop: BIRD and we keep trying (every second),
			// and no attempt gets through on our TTL 1.
			time.Sleep(8 * time.Second)
			if n := neighborState(t, s, ip("10.97.2.2")); n.State == StateEstablished {
				t.Fatalf("session two hops away came up without ebgp-multihop (%s socket TTL not 1?)", tc.ourTTLDecide)
			}

			cfg.Neighbors[0].MultihopTTL = 2
			if err := s.Apply(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			r := newRIB(s)
			r.waitRoute(t, pfx("10.52.0.0/24"), ip("10.97.2.2"))
			n := neighborState(t, s, ip("10.97.2.2"))
			if n.State != StateEstablished || n.PrefixesReceived[IPv4Unicast] != 1 {
				t.Errorf("multihop session: %+v, want established with one prefix received", n)
			}
			if out := b.birdc(t, "show", "protocols", "mh"); !strings.Contains(out, "Established") {
				t.Errorf("BIRD's session is not established:\n%s", out)
			}
		})
	}
}

package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// birdPeer is a BIRD 2 in its own namespace, linked to the test's namespace
// by a veth: 10.99.0.1/fd99::1 on our side, 10.99.0.2/fd99::2 on BIRD's.
// It peers with AS 65001 at our addresses and exports its static routes.
type birdPeer struct {
	dir string
}

const birdAS = 65002

func startBIRD(t *testing.T, statics4, statics6 []netip.Prefix) *birdPeer {
	t.Helper()
	peerNS := ns.NewT(t, "bird")
	cur, err := ns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if err := ns.Veth(cur, "tobird", peerNS, "eth0"); err != nil {
		t.Fatal(err)
	}
	// Our end lives in the test binary's namespace, which outlives the
	// test; deleting it removes the pair at once.
	t.Cleanup(func() {
		cur, err := ns.Current()
		if err != nil {
			t.Error(err)
			return
		}
		defer cur.Close()
		if l, err := cur.Handle().LinkByName("tobird"); err == nil {
			cur.Handle().LinkDel(l)
		}
	})
	for _, a := range []struct {
		n    *ns.NS
		link string
		p    string
	}{
		{cur, "tobird", "10.99.0.1/24"}, {cur, "tobird", "fd99::1/64"},
		{peerNS, "eth0", "10.99.0.2/24"}, {peerNS, "eth0", "fd99::2/64"},
	} {
		if err := a.n.AddAddr(a.link, netip.MustParsePrefix(a.p)); err != nil {
			t.Fatal(err)
		}
	}

	var conf strings.Builder
	fmt.Fprintf(&conf, "router id 10.99.0.2;\nprotocol device {}\n")
	fmt.Fprintf(&conf, "protocol static s4 { ipv4;\n")
	for _, p := range statics4 {
		fmt.Fprintf(&conf, "  route %v blackhole;\n", p)
	}
	fmt.Fprintf(&conf, "}\nprotocol static s6 { ipv6;\n")
	for _, p := range statics6 {
		fmt.Fprintf(&conf, "  route %v blackhole;\n", p)
	}
	fmt.Fprintf(&conf, "}\n")
	// Short timers; connect delay 1 s instead of BIRD's 5.
	const timers = "hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;"
	fmt.Fprintf(&conf, "protocol bgp up4 { local 10.99.0.2 as %d; neighbor 10.99.0.1 as 65001; %s\n"+
		"  ipv4 { import all; export where source = RTS_STATIC; }; }\n", birdAS, timers)
	fmt.Fprintf(&conf, "protocol bgp up6 { local fd99::2 as %d; neighbor fd99::1 as 65001; %s\n"+
		"  ipv6 { import all; export where source = RTS_STATIC; }; }\n", birdAS, timers)

	b := &birdPeer{dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(b.dir, "bird.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// bird daemonizes; its PID is in the pid file.
	if out, err := peerNS.Run(t.Context(), "bird", "-c", b.path("bird.conf"), "-s", b.path("bird.ctl"), "-P", b.path("bird.pid")); err != nil {
		t.Fatalf("start bird: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		raw, err := os.ReadFile(b.path("bird.pid"))
		if err != nil {
			t.Errorf("bird pid file: %v", err)
			return
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	})
	return b
}

func (b *birdPeer) path(name string) string { return filepath.Join(b.dir, name) }

func (b *birdPeer) birdc(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.path("bird.ctl")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("birdc %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// waitRoute waits until BIRD has p from us (AS 65001) via next hop nh.
func (b *birdPeer) waitRoute(t *testing.T, p netip.Prefix, nh netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		out := b.birdc(t, "show", "route", "for", p.String(), "all")
		if strings.Contains(out, p.String()) && strings.Contains(out, "65001") && strings.Contains(out, "via "+nh.String()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD never got %v via %v from AS 65001; show route:\n%s\nprotocols:\n%s", p, nh, out, b.birdc(t, "show", "protocols"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func birdConfig(originate ...netip.Prefix) Config {
	return Config{
		ASN: 65001, RouterID: ip("10.99.0.1"), Multipath: Multipath{Enabled: true},
		ListenAddresses: []netip.Addr{ip("10.99.0.1"), ip("fd99::1")},
		Neighbors: []Neighbor{
			peer("10.99.0.2", "10.99.0.1", birdAS),
			peer("fd99::2", "fd99::1", birdAS),
		},
		Originate: originate,
	}
}

func TestPrivilegedBIRDInterop(t *testing.T) {
	ns.Privileged(t)
	b := startBIRD(t, []netip.Prefix{pfx("10.50.0.0/24")}, []netip.Prefix{pfx("2001:db8:50::/48")})
	s := speaker(t, birdConfig(pfx("10.60.0.0/24"), pfx("2001:db8:60::/48")))
	r := newRIB(s)

	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	r.waitRoute(t, pfx("2001:db8:50::/48"), ip("fd99::2"))
	b.waitRoute(t, pfx("10.60.0.0/24"), ip("10.99.0.1"))
	b.waitRoute(t, pfx("2001:db8:60::/48"), ip("fd99::1"))

	n := neighborState(t, s, ip("10.99.0.2"))
	if n.State != StateEstablished || n.PrefixesReceived[IPv4Unicast] != 1 || n.PrefixesSent[IPv4Unicast] != 1 {
		t.Errorf("state of BIRD's IPv4 session = %+v, want established, one prefix each way", n)
	}

	// BIRD withdraws (its static protocol goes down): Drain says so.
	b.birdc(t, "disable", "s4")
	r.waitRoute(t, pfx("10.50.0.0/24"))
	r.waitRoute(t, pfx("2001:db8:50::/48"), ip("fd99::2"))
}

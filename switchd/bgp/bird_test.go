package bgp

import (
	"context"
	"errors"
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
	ns  *ns.NS
}

const birdAS = 65002

// birdSpec is what startBIRDWith configures: the static routes BIRD
// exports, and Options added to both bgp protocols (e.g. "graceful restart
// on;", "password \"x\";").
type birdSpec struct {
	Statics4, Statics6 []netip.Prefix
	Options            string
	Timers             string // replaces the short default timers
	// StaticAttrs are BIRD filter commands run on a static route (e.g.
	// "bgp_community.add((65002,1));"), by prefix.
	StaticAttrs map[netip.Prefix]string
}

func startBIRD(t *testing.T, statics4, statics6 []netip.Prefix) *birdPeer {
	t.Helper()
	return startBIRDWith(t, birdSpec{Statics4: statics4, Statics6: statics6})
}

func startBIRDWith(t *testing.T, spec birdSpec) *birdPeer {
	t.Helper()
	peerNS := ns.NewT(t, "bird")
	cur := vethFromTest(t, "tobird", peerNS)
	defer cur.Close()
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
	return runBIRD(t, peerNS, birdConf(spec))
}

// vethFromTest links the test binary's namespace (link name) to peer
// (link eth0) and returns the test's namespace. Our end lives in the test
// binary's namespace, which outlives the test; deleting it at the end
// removes the pair (and routes through it) at once.
func vethFromTest(t *testing.T, name string, peer *ns.NS) *ns.NS {
	t.Helper()
	cur, err := ns.Current()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Veth(cur, name, peer, "eth0"); err != nil {
		cur.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur, err := ns.Current()
		if err != nil {
			t.Error(err)
			return
		}
		defer cur.Close()
		if l, err := cur.Handle().LinkByName(name); err == nil {
			cur.Handle().LinkDel(l)
		}
	})
	return cur
}

// birdConf is the configuration startBIRDWith runs BIRD with.
func birdConf(spec birdSpec) string {
	var conf strings.Builder
	fmt.Fprintf(&conf, "router id 10.99.0.2;\nprotocol device {}\n")
	fmt.Fprintf(&conf, "protocol static s4 { ipv4;\n")
	route := func(p netip.Prefix) {
		if a, ok := spec.StaticAttrs[p]; ok {
			fmt.Fprintf(&conf, "  route %v blackhole { %s };\n", p, a)
			return
		}
		fmt.Fprintf(&conf, "  route %v blackhole;\n", p)
	}
	for _, p := range spec.Statics4 {
		route(p)
	}
	fmt.Fprintf(&conf, "}\nprotocol static s6 { ipv6;\n")
	for _, p := range spec.Statics6 {
		route(p)
	}
	fmt.Fprintf(&conf, "}\n")
	// Short timers; connect delay 1 s instead of BIRD's 5.
	timers := "hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;"
	if spec.Timers != "" {
		timers = spec.Timers
	}
	fmt.Fprintf(&conf, "protocol bgp up4 { local 10.99.0.2 as %d; neighbor 10.99.0.1 as 65001; %s %s\n"+
		"  ipv4 { import all; export where source = RTS_STATIC; }; }\n", birdAS, timers, spec.Options)
	fmt.Fprintf(&conf, "protocol bgp up6 { local fd99::2 as %d; neighbor fd99::1 as 65001; %s %s\n"+
		"  ipv6 { import all; export where source = RTS_STATIC; }; }\n", birdAS, timers, spec.Options)
	return conf.String()
}

// runBIRD starts BIRD with conf in n; the test's end stops it.
func runBIRD(t *testing.T, n *ns.NS, conf string) *birdPeer {
	t.Helper()
	b := &birdPeer{dir: t.TempDir(), ns: n}
	b.start(t, conf)
	t.Cleanup(func() { b.kill(t, syscall.SIGTERM) })
	return b
}

func (b *birdPeer) start(t *testing.T, conf string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(b.dir, "bird.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// bird daemonizes; its PID is in the pid file.
	if out, err := b.ns.Run(t.Context(), "bird", "-c", b.path("bird.conf"), "-s", b.path("bird.ctl"), "-P", b.path("bird.pid")); err != nil {
		t.Fatalf("start bird: %v\n%s", err, out)
	}
}

// reconfigure makes BIRD run with conf, as "birdc configure" does.
func (b *birdPeer) reconfigure(t *testing.T, conf string) {
	t.Helper()
	if err := os.WriteFile(b.path("bird.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := b.birdc(t, "configure"); !strings.Contains(out, "Reconfigured") {
		t.Fatalf("birdc configure:\n%s", out)
	}
}

// kill sends sig to BIRD and waits (bounded) until it is gone.
func (b *birdPeer) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	raw, err := os.ReadFile(b.path("bird.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return // killed before and not started again
	}
	if err != nil {
		t.Errorf("bird pid file: %v", err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Errorf("bird pid file: %v", err)
		return
	}
	syscall.Kill(pid, sig)
	for deadline := time.Now().Add(patience); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("bird (pid %d) still running after %v", pid, sig)
			return
		}
	}
	os.Remove(b.path("bird.pid"))
	os.Remove(b.path("bird.ctl"))
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
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

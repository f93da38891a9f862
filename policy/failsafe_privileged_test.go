package policy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables/expr"

	"github.com/switchd/switchd/sim/ns"
)

// listenTCP listens on every address of n at port, accepting and closing
// connections until the test ends.
func listenTCP(t *testing.T, n *ns.NS, port uint16) {
	t.Helper()
	serveTCP(t, n, fmt.Sprintf("[::]:%d", port))
}

// dialTCP connects from src (in n) to dst:port; a dropped SYN times out.
func dialTCP(n *ns.NS, src, dst string, port uint16) error {
	return n.Do(func() error {
		d := net.Dialer{Timeout: 500 * time.Millisecond,
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", net.JoinHostPort(dst, fmt.Sprint(port)))
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// denyAll is a slot chain that drops everything through iface (in or
// out; "": any), counting it: the policy a user could write to cut the
// host off.
func denyAll(slot string, in bool, iface string) Chain {
	var match []expr.Any
	if iface != "" {
		k := expr.MetaKeyOIFNAME
		if in {
			k = expr.MetaKeyIIFNAME
		}
		match = []expr.Any{&expr.Meta{Key: k, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: IfName(iface)}}
	}
	return Chain{Name: slot, Rules: []ChainRule{{ID: "deny-all",
		Exprs: append(match, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})}}}
}

// TestPrivilegedFailsafe: a host namespace with a deny-all ACL bound in
// and out on the interface facing its peer, then with a deny-all workload
// policy, keeps BGP with its configured
// neighbors (either side connecting, IPv4 and IPv6), SSH, the gNMI port,
// an extra port and ping; TCP to another port, and BGP from or to an
// address that is no neighbor, are dropped by the deny-all. A neighbor
// change is elements only.
func TestPrivilegedFailsafe(t *testing.T) {
	host, peer := ns.NewT(t, "fs-host"), ns.NewT(t, "fs-peer")
	for _, n := range []*ns.NS{host, peer} {
		mustRun(t, n, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	}
	must(t, ns.Veth(host, "peer0", peer, "eth0"))
	for _, p := range []string{"10.7.0.1/24", "fd00:7::1/64"} {
		must(t, host.AddAddr("peer0", netip.MustParsePrefix(p)))
	}
	// .2 is a configured neighbor, .3 is not.
	for _, p := range []string{"10.7.0.2/24", "10.7.0.3/24", "fd00:7::2/64", "fd00:7::3/64"} {
		must(t, peer.AddAddr("eth0", netip.MustParsePrefix(p)))
	}
	const extra, other = 8443, 8080
	for _, p := range []uint16{PortBGP, PortSSH, DefaultGNMIPort, extra, other} {
		listenTCP(t, host, p)
	}
	for _, p := range []uint16{PortBGP, PortSSH, other} {
		listenTCP(t, peer, p)
	}

	type conn struct {
		from     *ns.NS
		src, dst string
		port     uint16
		want     bool // with the deny-all in place
	}
	conns := []conn{
		{peer, "10.7.0.2", "10.7.0.1", PortBGP, true},
		{peer, "fd00:7::2", "fd00:7::1", PortBGP, true},
		{peer, "10.7.0.2", "10.7.0.1", PortSSH, true},
		{peer, "fd00:7::2", "fd00:7::1", PortSSH, true},
		{peer, "10.7.0.2", "10.7.0.1", DefaultGNMIPort, true},
		{peer, "10.7.0.2", "10.7.0.1", extra, true},
		{peer, "10.7.0.2", "10.7.0.1", other, false},
		{peer, "fd00:7::2", "fd00:7::1", other, false},
		{peer, "10.7.0.3", "10.7.0.1", PortBGP, false},
		{peer, "fd00:7::3", "fd00:7::1", PortBGP, false},
		{peer, "10.7.0.3", "10.7.0.1", PortSSH, true},
		// The host as the client: replies come back from the port.
		{host, "10.7.0.1", "10.7.0.2", PortBGP, true},
		{host, "fd00:7::1", "fd00:7::2", PortBGP, true},
		{host, "10.7.0.1", "10.7.0.3", PortBGP, false},
		{host, "10.7.0.1", "10.7.0.3", PortSSH, true},
		{host, "10.7.0.1", "10.7.0.2", other, false},
	}
	check := func(when string, deny bool) {
		t.Helper()
		for _, c := range conns {
			want := c.want || !deny
			err := dialTCP(c.from, c.src, c.dst, c.port)
			// A connection that should go through gets a few tries: on a
			// loaded machine the first SYN can wait out 500 ms behind
			// neighbour discovery. One that should be dropped gets one.
			for try := 1; want && err != nil && try < 4; try++ {
				err = dialTCP(c.from, c.src, c.dst, c.port)
			}
			if (err == nil) != want {
				t.Errorf("%s: %s -> %s port %d: %v, want connected %v", when, c.src, c.dst, c.port, err, want)
			}
		}
		for _, dst := range []string{"10.7.0.1", "fd00:7::1"} {
			if err := ping(t, peer, "eth0", dst, 1); err != nil {
				t.Errorf("%s: ping %s: %v", when, dst, err)
			}
		}
	}
	// Everything connects without the table: the failures below are
	// the deny-all's.
	check("without the table", false)

	tb := NewTable(host.Net())
	t.Cleanup(func() { tb.Close() })
	cfg := FailsafeConfig{
		Neighbors: []netip.Addr{netip.MustParseAddr("10.7.0.2"), netip.MustParseAddr("fd00:7::2")},
		Extra:     Failsafe{TCP: []uint16{extra}},
	}
	chains, sets, elems := failsafeSlots(cfg)
	for _, s := range sets {
		must(t, tb.SetSet(s))
		must(t, tb.AddElements(s.Name, elems[s.Name]...))
	}
	filled := map[string]bool{}
	for _, c := range chains {
		must(t, tb.SetChain(c))
		filled[c.Name] = true
	}
	// deny installs a deny-all (and deletes the one before), with the base
	// chains to match, and checks every connection under it.
	ctx := context.Background()
	deny := func(when string, add []Chain, del ...string) {
		t.Helper()
		for _, name := range del {
			tb.DeleteChain(name)
			delete(filled, name)
		}
		for _, c := range add {
			must(t, tb.SetChain(c))
			filled[c.Name] = true
		}
		for _, name := range []string{"prerouting", "input", "forward", "output"} {
			tb.DeleteChain(name)
		}
		for _, c := range BaseChains(func(s string) bool { return filled[s] }) {
			must(t, tb.SetChain(c))
		}
		must(t, tb.Apply(ctx))
		// Neighbor entries from before would spare NDP the table.
		mustRun(t, host, "ip", "neigh", "flush", "dev", "peer0")
		mustRun(t, peer, "ip", "neigh", "flush", "dev", "eth0")
		denied := counter(t, tb, add[0].Name, "deny-all")
		check(when, true)
		if got := counter(t, tb, add[0].Name, "deny-all"); got <= denied {
			t.Errorf("%s: deny-all counter %d -> %d: the refused connections did not reach it", when, denied, got)
		}
	}
	deny("under a deny-all ACL on the peer's interface",
		[]Chain{denyAll(SlotACLInput, true, "peer0"), denyAll(SlotACLOutput, false, "peer0")})
	if got := counter(t, tb, SlotFailsafeIn, "bgp4-local"); got == 0 {
		t.Error("failsafe bgp4-local counted nothing")
	}
	// Workload policy has an input slot only (traffic from workloads to
	// the host); denying all of it must spare the failsafe services too.
	deny("under a deny-all workload policy", []Chain{denyAll(SlotWorkloadInput, true, "")}, SlotACLInput, SlotACLOutput)

	// The neighbor moves from .2 to .3: elements only.
	k := newKernel(t, host, DefaultName)
	before := k.handles()
	old := failsafeElements(cfg)[SetBGPPeers4]
	cfg.Neighbors[0] = netip.MustParseAddr("10.7.0.3")
	must(t, tb.DeleteElements(SetBGPPeers4, old...))
	must(t, tb.AddElements(SetBGPPeers4, failsafeElements(cfg)[SetBGPPeers4]...))
	must(t, tb.Apply(ctx))
	if h := k.handles(); !equalHandles(before, h) {
		t.Errorf("a neighbor change changed rules: %v -> %v", before, h)
	}
	if err := dialTCP(peer, "10.7.0.3", "10.7.0.1", PortBGP); err != nil {
		t.Errorf("the new neighbor 10.7.0.3 to port 179: %v", err)
	}
	if err := dialTCP(peer, "10.7.0.2", "10.7.0.1", PortBGP); err == nil {
		t.Error("the old neighbor 10.7.0.2 still reaches port 179")
	}
}

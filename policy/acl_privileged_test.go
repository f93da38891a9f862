package policy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedACLDropsAndAccepts applies the example ACL (examples/
// acl.yaml: SSH accepted from the mgmt prefixes, dropped from the hosts'
// range) in a namespace standing for the leaf, on its interface host1,
// and connects over a veth pair from a second namespace with a source
// address of each kind, IPv4 and IPv6: real TCP connections to a real
// listener. The entries' counters count what they matched.
func TestPrivilegedACLDropsAndAccepts(t *testing.T) {
	leaf, host := aclPeers(t, "acl", []string{"10.1.0.1/16", "192.0.2.1/24", "fd00:1::1/48", "2001:db8:100::1/48"},
		[]string{"10.1.0.2/16", "192.0.2.2/24", "fd00:1::2/48", "2001:db8:100::2/48"})

	serveTCP(t, leaf, ":22")

	e := NewEngine(leaf.Net())
	tb := e.Table()
	t.Cleanup(func() { tb.Close() })
	must(t, e.SetACL(*exampleACL()))
	ctx := context.Background()
	must(t, e.Apply(ctx))

	listing, err := leaf.Run(ctx, "nft", "list", "table", "inet", DefaultName)
	must(t, err)
	for _, want := range []string{"chain acl-in-4-host1-in", "chain acl-in-6-host1-in", "set acl-pfx4-mgmt",
		"flags interval", `"host1" : jump acl-in-if-host1`, "iifname vmap @acl-in", "jump acl-input", "jump acl-forward"} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list lacks %q:\n%s", want, listing)
		}
	}

	for _, tc := range []struct {
		src, dst string
		pass     bool
	}{
		{"192.0.2.2", "192.0.2.1", true}, // mgmt: entry 10 accepts
		{"10.1.0.2", "10.1.0.1", false},  // hosts: entry 20 drops
		{"2001:db8:100::2", "2001:db8:100::1", true},
		{"fd00:1::2", "fd00:1::1", false},
	} {
		aclConnect(t, host, tc.src, tc.dst, 22, tc.pass)
	}

	rcs, err := tb.Counters()
	must(t, err)
	got := map[ACLSetKey]map[uint32]uint64{}
	for _, c := range ACLCounters(rcs) {
		if got[c.Set] == nil {
			got[c.Set] = map[uint32]uint64{}
		}
		got[c.Set][c.Seq] = c.Packets
		if c.Packets > 0 && c.Octets < 40*c.Packets {
			t.Errorf("%v entry %d: %d packets but %d octets", c.Set, c.Seq, c.Packets, c.Octets)
		}
	}
	for _, typ := range []ACLType{ACLIPv4, ACLIPv6} {
		k := ACLSetKey{"host1-in", typ}
		// Accepted: at least the handshake's SYN and ACK. Dropped: the
		// SYN, maybe retransmitted once within the timeout.
		if got[k][10] < 2 || got[k][20] < 1 || got[k][20] > 3 {
			t.Errorf("%v counters %v, want entry 10 >= 2 packets, entry 20 1-3", k, got[k])
		}
	}
}

// TestPrivilegedACLMatchesLoad applies entries with every kind of match
// (DSCP lists, hop limit, port ranges, TCP flags, REJECT, both
// directions) and checks the kernel takes them as nft shows them; a
// REJECT entry answers a real connection with a reset, an egress ACL
// drops what leaves by the interface.
func TestPrivilegedACLMatchesLoad(t *testing.T) {
	leaf := ns.NewT(t, "acl-all")
	host := ns.NewT(t, "acl-all-h")
	must(t, ns.Veth(leaf, "host1", host, "eth0"))
	must(t, leaf.AddAddr("host1", netip.MustParsePrefix("10.1.0.1/16")))
	must(t, host.AddAddr("eth0", netip.MustParsePrefix("10.1.0.2/16")))
	var ln net.Listener
	must(t, host.Do(func() (err error) { ln, err = net.Listen("tcp", ":2222"); return err }))
	t.Cleanup(func() { ln.Close() })

	hop := uint8(64)
	in := ACLIntent{
		Sets: []ACLSet{{Name: "all", Type: ACLMixed, Entries: []ACLEntry{
			{Seq: 5, Family: ACLIPv6, DSCP: []uint8{10, 46}, HopLimit: &hop, Action: ACLAccept, Log: true},
			{Seq: 6, Family: ACLIPv4, Protocol: ProtoTCP, SrcPorts: PortMatch{Ranges: []PortRange{{1024, 65535}}},
				DstPorts: PortMatch{Ranges: []PortRange{{23, 23}}}, TCPFlags: &TCPFlagMatch{Mask: TCPSyn | TCPAck, Value: TCPSyn}, Action: ACLReject},
			{Seq: 7, Family: ACLIPv4, Protocol: ProtoUDP, TCPFlags: nil, DSCP: []uint8{8}, Action: ACLReject},
			{Seq: 8, Family: ACLIPv4, Protocol: ProtoTCP, TCPFlags: &TCPFlagMatch{Mask: TCPAck | TCPRst, Any: true}, Action: ACLAccept},
		}}, {Name: "out", Type: ACLIPv4, Entries: []ACLEntry{
			{Seq: 1, Family: ACLIPv4, Protocol: ProtoTCP, DstPorts: PortMatch{Ranges: []PortRange{{2222, 2222}}}, Action: ACLDrop},
		}}},
		Bindings: []ACLBinding{{Interface: "host1", Ingress: []ACLSetKey{{"all", ACLMixed}}, Egress: []ACLSetKey{{"out", ACLIPv4}}}},
	}
	e := NewEngine(leaf.Net())
	t.Cleanup(func() { e.Table().Close() })
	must(t, e.SetACL(in))
	ctx := context.Background()
	must(t, e.Apply(ctx))
	listing, err := leaf.Run(ctx, "nft", "list", "table", "inet", DefaultName)
	must(t, err)
	for _, want := range []string{"ip6 dscp af11", "ip6 dscp ef", "ip6 hoplimit 64", "tcp sport 1024-65535",
		"tcp flags syn / syn,ack", "tcp flags rst,ack", "ip dscp cs1", "reject with tcp reset", "reject", "log prefix", "oifname vmap @acl-out"} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list lacks %q:\n%s", want, listing)
		}
	}

	// REJECT: the SYN to port 23 (from a port >= 1024) is answered with a
	// reset, so the connection is refused at once.
	var ln23 net.Listener
	must(t, leaf.Do(func() (err error) { ln23, err = net.Listen("tcp", ":23"); return err }))
	t.Cleanup(func() { ln23.Close() })
	err = host.Do(func() error {
		c, err := net.DialTimeout("tcp", "10.1.0.1:23", 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("connect to the REJECT entry's port: %v, want connection refused", err)
	}
	// Egress: the leaf's SYN to the host's port 2222 leaves by host1 and
	// is dropped there.
	err = leaf.Do(func() error {
		c, err := net.DialTimeout("tcp", "10.1.0.2:2222", 400*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("connect out by host1 to tcp/2222: %v, want a timeout (the egress ACL drops it)", err)
	}
}

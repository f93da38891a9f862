package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

// runsACL is an ACL whose entries compile to runs (aclruns.go), bound
// ingress on host1; seq 30 and 25 are what TestPrivilegedACLRuns changes.
//
//	IPv4:
//	  10-40   DROP   src host . tcp . port      run 10 (50 overlaps 10)
//	  50-80   DROP   the same shape             run 50
//	  100-130 ACCEPT                            run 100
//	  135     DROP   10.1.0.2 tcp/3005          a rule (another action)
//	  140-170 ACCEPT 140 is what 135 drops      run 140
//	  1000    DROP   any TCP                    a rule
//	IPv6: 10-40 DROP fd00:1::2 . tcp . 2001-2004, run 10.
func runsACL(with25, with30 bool) ACLIntent {
	h2, h3 := netip.MustParsePrefix("10.1.0.2/32"), netip.MustParsePrefix("10.1.0.3/32")
	e := func(seq uint32, src netip.Prefix, first, last uint16, act ACLAction) ACLEntry {
		fam := ACLIPv4
		if src.Addr().Is6() {
			fam = ACLIPv6
		}
		return ACLEntry{Seq: seq, Family: fam, Src: AddrMatch{Prefix: src}, Protocol: ProtoTCP,
			DstPorts: PortMatch{Ranges: []PortRange{{first, last}}}, Action: act}
	}
	v4 := []ACLEntry{e(10, h2, 2001, 2001, ACLDrop), e(20, h2, 2002, 2002, ACLDrop)}
	if with25 {
		v4 = append(v4, e(25, h2, 2005, 2005, ACLDrop))
	}
	if with30 {
		v4 = append(v4, e(30, h2, 2003, 2003, ACLDrop))
	}
	v4 = append(v4, e(40, h3, 2001, 2001, ACLDrop),
		e(50, netip.MustParsePrefix("10.1.0.0/16"), 2001, 2002, ACLDrop),
		e(60, h2, 2004, 2004, ACLDrop), e(70, h3, 2004, 2004, ACLDrop), e(80, h2, 2006, 2006, ACLDrop),
		e(100, h2, 3001, 3001, ACLAccept), e(110, h2, 3002, 3002, ACLAccept), e(120, h2, 3003, 3003, ACLAccept),
		e(130, h3, 3001, 3001, ACLAccept),
		e(135, h2, 3005, 3005, ACLDrop),
		e(140, h2, 3005, 3005, ACLAccept), e(150, h2, 3006, 3006, ACLAccept), e(160, h2, 3007, 3007, ACLAccept),
		e(170, h3, 3007, 3007, ACLAccept),
		ACLEntry{Seq: 1000, Family: ACLIPv4, Protocol: ProtoTCP, Action: ACLDrop})
	h6 := netip.MustParsePrefix("fd00:1::2/128")
	v6 := []ACLEntry{e(10, h6, 2001, 2001, ACLDrop), e(20, h6, 2002, 2002, ACLDrop), e(30, h6, 2003, 2003, ACLDrop),
		e(40, h6, 2004, 2004, ACLDrop)}
	return ACLIntent{
		Sets:     []ACLSet{{Name: "runs", Type: ACLIPv4, Entries: v4}, {Name: "runs", Type: ACLIPv6, Entries: v6}},
		Bindings: []ACLBinding{{Interface: "host1", Ingress: []ACLSetKey{{"runs", ACLIPv4}, {"runs", ACLIPv6}}}},
	}
}

// TestPrivilegedACLRuns applies runsACL in a namespace standing for the
// leaf and connects from a second one over a veth, from two source
// addresses, to real listeners: each connection is dropped or accepted as
// the first entry it matches says, in a chain of six rules for 18 IPv4
// entries, and counted on that entry alone — never on entry 50, which
// overlaps entry 10 and so starts a run of its own, for packets entry 10
// or 20 matched first, nor on 140 for what 135 drops. Then entry 25 is
// added and 30 removed, both inside run 10: the Apply is one element
// added and one deleted, every rule keeps its handle and the other
// entries their counts, and traffic follows the new ACL. A second engine
// adopting the table writes nothing and reads the same counters.
func TestPrivilegedACLRuns(t *testing.T) {
	leaf, host := aclPeers(t, "acl-run", []string{"10.1.0.1/16", "fd00:1::1/64"}, []string{"10.1.0.2/16", "10.1.0.3/16", "fd00:1::2/64"})
	for _, p := range []int{2001, 2002, 2003, 2004, 2005, 3001, 3005, 3006, 3009} {
		serveTCP(t, leaf, fmt.Sprintf(":%d", p))
	}

	e := NewEngine(leaf.Net())
	tb := e.Table()
	t.Cleanup(func() { tb.Close() })
	must(t, e.SetACL(runsACL(false, true)))
	ctx := context.Background()
	must(t, e.Apply(ctx))
	k := newKernel(t, leaf, DefaultName)
	if hs := k.handles(); len(hs["acl-in-4-runs"]) != 6 || len(hs["acl-in-6-runs"]) != 1 {
		t.Fatalf("rules per chain %v, want 6 for the IPv4 set and 1 for the IPv6 set:\n%s", hs, k.nft("list", "table", "inet", DefaultName))
	}
	listing := k.nft("list", "table", "inet", DefaultName)
	for _, want := range []string{"ip saddr . meta l4proto . th dport @acl-in-4-runs.10.drop-ip-saddr-l4proto-dport.exact drop",
		"@acl-in-4-runs.50.drop-ip-saddr-l4proto-dport drop", "flags interval",
		"@acl-in-4-runs.100.accept-ip-saddr-l4proto-dport.exact return", "ip6 saddr . meta l4proto . th dport @acl-in-6-runs.10.",
		`10.1.0.0/16 . tcp . 2001-2002 counter packets 0 bytes 0 comment "acl in ACL_IPV4 50 runs"`} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list lacks %q:\n%s", want, listing)
		}
	}

	connect := func(src, dst string, port int, pass bool) {
		t.Helper()
		aclConnect(t, host, src, dst, port, pass)
	}
	type key struct {
		typ ACLType
		seq uint32
	}
	counts := func(tb *Table) map[key]uint64 {
		t.Helper()
		rcs, err := tb.Counters()
		must(t, err)
		out := map[key]uint64{}
		for _, c := range ACLCounters(rcs) {
			out[key{c.Set.Type, c.Seq}] = c.Packets
			if c.Packets > 0 && c.Octets < 40*c.Packets {
				t.Errorf("%v entry %d: %d packets but %d octets", c.Set, c.Seq, c.Packets, c.Octets)
			}
		}
		return out
	}
	// check compares counters with want: "drop" is one refused
	// connection (its SYN, maybe retransmitted: 1-3 packets), "pass" one
	// connection (at least SYN and ACK), "0" nothing; entries not named
	// must be 0 too.
	check := func(got map[key]uint64, want map[key]string) {
		t.Helper()
		for k, n := range got {
			w := want[k]
			ok := (w == "" || w == "0") && n == 0 || w == "drop" && n >= 1 && n <= 3 || w == "pass" && n >= 2
			if !ok {
				t.Errorf("entry %v %d counted %d packets, want %q", k.typ, k.seq, n, w)
			}
		}
		if len(got) != 18+4 {
			t.Errorf("counters of %d entries, want 22: %v", len(got), got)
		}
	}

	h2, h3, leaf4, leaf6 := "10.1.0.2", "10.1.0.3", "10.1.0.1", "fd00:1::1"
	connect(h2, leaf4, 2001, false) // entry 10 (also in 50's range)
	connect(h2, leaf4, 2002, false) // entry 20 (also in 50's range)
	connect(h2, leaf4, 2004, false) // 60
	connect(h2, leaf4, 3001, true)  // 100
	connect(h3, leaf4, 3001, true)  // 130
	connect(h2, leaf4, 3005, false) // 135 drops before 140 accepts
	connect(h2, leaf4, 3006, true)  // 150
	connect(h2, leaf4, 3009, false) // 1000
	connect("fd00:1::2", leaf6, 2002, false)
	connect("fd00:1::2", leaf6, 3001, true) // no IPv6 entry matches
	v4, v6 := func(seq uint32) key { return key{ACLIPv4, seq} }, func(seq uint32) key { return key{ACLIPv6, seq} }
	want := map[key]string{v4(10): "drop", v4(20): "drop", v4(60): "drop", v4(100): "pass", v4(130): "pass",
		v4(135): "drop", v4(150): "pass", v4(1000): "drop", v6(20): "drop"}
	check(counts(tb), want)
	// Now entry 50's own packet: 10.1.0.3 to 2002 is in no earlier entry.
	connect(h3, leaf4, 2002, false)
	want[v4(50)] = "drop"
	before := counts(tb)
	check(before, want)

	// Entry 25 in, 30 out, inside run 10: elements only.
	handles := k.handles()
	must(t, e.SetACL(runsACL(true, false)))
	must(t, e.Apply(ctx))
	if n := tb.Messages(); n != 2 {
		t.Errorf("adding one entry and removing another inside a run took %d messages, want 2 (an element add, an element delete)", n)
	}
	if got := k.handles(); !maps.EqualFunc(got, handles, func(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Errorf("rule handles changed:\n before %v\n after  %v", handles, got)
	}
	after := counts(tb)
	delete(before, v4(30))
	for k, n := range before {
		if after[k] != n {
			t.Errorf("entry %v %d counted %d before the change, %d after", k.typ, k.seq, n, after[k])
		}
	}
	connect(h2, leaf4, 2005, false) // the new 25
	connect(h2, leaf4, 2003, false) // 30 is gone: 1000 drops it
	got := counts(tb)
	if got[v4(25)] < 1 || got[v4(1000)] < before[v4(1000)]+1 || got[v4(10)] != before[v4(10)] {
		t.Errorf("after the change: entry 25 %d, 1000 %d (was %d), 10 %d (was %d); want 25 and 1000 to count, 10 not",
			got[v4(25)], got[v4(1000)], before[v4(1000)], got[v4(10)], before[v4(10)])
	}

	// A restarted switchd adopts the table as it is, counters included.
	e2 := NewEngine(leaf.Net())
	t.Cleanup(func() { e2.Close() })
	must(t, e2.SetACL(runsACL(true, false)))
	must(t, e2.Apply(ctx))
	if n := e2.Table().Messages(); n != 0 {
		t.Errorf("adopting the table wrote %d messages, want none", n)
	}
	if adopted := counts(e2.Table()); !maps.Equal(adopted, got) {
		t.Errorf("counters read by the adopting engine %v, want %v", adopted, got)
	}
}

// aclPeers makes the namespaces of an ACL test: name-leaf and name-host,
// joined by a veth (host1 on the leaf, eth0 on the host), with these
// addresses.
func aclPeers(t *testing.T, name string, leafAddrs, hostAddrs []string) (leaf, host *ns.NS) {
	leaf, host = ns.NewT(t, name+"-leaf"), ns.NewT(t, name+"-host")
	must(t, ns.Veth(leaf, "host1", host, "eth0"))
	for _, a := range leafAddrs {
		must(t, leaf.AddAddr("host1", netip.MustParsePrefix(a)))
	}
	for _, a := range hostAddrs {
		must(t, host.AddAddr("eth0", netip.MustParsePrefix(a)))
	}
	return leaf, host
}

// aclConnect dials dst:port from src in host: pass says whether it must
// connect (retried: the machine may be loaded) or time out (dropped, not
// refused).
func aclConnect(t *testing.T, host *ns.NS, src, dst string, port int, pass bool) {
	t.Helper()
	tries, timeout := 1, 400*time.Millisecond
	if pass {
		tries, timeout = 3, 2*time.Second
	}
	var err error
	for range tries {
		err = host.Do(func() error {
			d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", net.JoinHostPort(dst, fmt.Sprint(port)))
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			break
		}
	}
	var ne net.Error
	switch {
	case pass && err != nil:
		t.Errorf("%s → %s:%d refused by the ACL: %v", src, dst, port, err)
	case !pass && err == nil:
		t.Errorf("%s → %s:%d connected through a DROP entry", src, dst, port)
	case !pass && !(errors.As(err, &ne) && ne.Timeout()):
		t.Errorf("%s → %s:%d: %v, want a timeout (dropped, not refused)", src, dst, port, err)
	}
}

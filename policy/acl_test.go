package policy

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// exampleACL is what switchd/config makes of examples/acl.yaml: SSH
// accepted from the mgmt prefix sets, dropped and logged from the hosts'
// range, IPv4 and IPv6, bound ingress on host1.
func exampleACL() *ACLIntent {
	ssh := PortMatch{Ranges: []PortRange{{First: 22, Last: 22}}}
	set := func(t ACLType, drop netip.Prefix) ACLSet {
		return ACLSet{Name: "host1-in", Type: t, Entries: []ACLEntry{
			{Seq: 10, Family: t, Src: AddrMatch{Set: "mgmt"}, Protocol: ProtoTCP, DstPorts: PortMatch{Set: "ssh"}, Action: ACLAccept},
			{Seq: 20, Family: t, Src: AddrMatch{Prefix: drop}, Protocol: ProtoTCP, DstPorts: ssh, Action: ACLDrop, Log: true},
		}}
	}
	return &ACLIntent{
		Sets: []ACLSet{set(ACLIPv4, netip.MustParsePrefix("10.1.0.0/16")), set(ACLIPv6, netip.MustParsePrefix("fd00:1::/48"))},
		Defined: DefinedSets{
			IPv4:  []PrefixSet{{Name: "mgmt", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}},
			IPv6:  []PrefixSet{{Name: "mgmt", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::/48")}}},
			Ports: []PortSet{{Name: "ssh", Ranges: []PortRange{{First: 22, Last: 22}}}, {Name: "unused", Ranges: []PortRange{{First: 1, Last: 2}}}},
		},
		Bindings: []ACLBinding{{Interface: "host1", Ingress: []ACLSetKey{{"host1-in", ACLIPv4}, {"host1-in", ACLIPv6}}}},
	}
}

func chainNames(cs []Chain) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func ruleIDs(c Chain) []string {
	var out []string
	for _, r := range c.Rules {
		out = append(out, r.ID)
	}
	return out
}

func findChain(t *testing.T, a *ACLTable, name string) Chain {
	t.Helper()
	for _, c := range a.Chains {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no chain %s in %v", name, chainNames(a.Chains))
	return Chain{}
}

func findSet(t *testing.T, a *ACLTable, name string) ACLTableSet {
	t.Helper()
	for _, s := range a.Sets {
		if s.Set.Name == name {
			return s
		}
	}
	t.Fatalf("no set %s", name)
	return ACLTableSet{}
}

func TestCompileACLStructure(t *testing.T) {
	a := CompileACL(exampleACL())
	wantChains := []string{SlotACLInput, SlotACLForward, SlotACLOutput,
		"acl-in-4-host1-in", "acl-in-6-host1-in", "acl-in-if-host1"}
	if got := chainNames(a.Chains); !slices.Equal(got, wantChains) {
		t.Errorf("chains %v, want %v", got, wantChains)
	}
	// The slots look the interface up: ingress by iifname, egress by
	// oifname; forwarded packets pass both.
	for i, want := range [][]string{{"vmap acl-in"}, {"vmap acl-in", "vmap acl-out"}, {"vmap acl-out"}} {
		if c := a.Chains[i]; c.Hook != nil || !slices.Equal(ruleIDs(c), want) {
			t.Errorf("slot chain %s: hook %v, rules %v; want a regular chain with %v", c.Name, c.Hook, ruleIDs(c), want)
		}
	}
	// The interface's chain tries the IPv4 set, then the IPv6 set.
	ifc := findChain(t, a, "acl-in-if-host1")
	if got, want := ruleIDs(ifc), []string{"jump acl-in-4-host1-in", "jump acl-in-6-host1-in"}; !slices.Equal(got, want) {
		t.Errorf("interface chain rules %v, want %v", got, want)
	}
	v4 := findChain(t, a, "acl-in-4-host1-in")
	if got, want := ruleIDs(v4), []string{"acl in ACL_IPV4 10 host1-in", "acl in ACL_IPV4 20 host1-in"}; !slices.Equal(got, want) {
		t.Errorf("IPv4 set chain rules %v, want %v", got, want)
	}
	for _, c := range []Chain{v4, findChain(t, a, "acl-in-6-host1-in")} {
		for _, r := range c.Rules {
			if !slices.ContainsFunc(r.Exprs, func(e expr.Any) bool { _, ok := e.(*expr.Counter); return ok }) {
				t.Errorf("rule %q has no counter", r.ID)
			}
		}
	}

	// Binding is a map element: host1 → its chain; nothing bound egress.
	in := findSet(t, a, "acl-in")
	if !in.Set.Verdict || in.Set.KeyType.Name != nftables.TypeIFName.Name || len(in.Elements) != 1 ||
		!bytes.Equal(in.Elements[0].Key, IfName("host1")) || in.Elements[0].Jump != "acl-in-if-host1" {
		t.Errorf("acl-in map %+v, want host1 → acl-in-if-host1", in)
	}
	if out := findSet(t, a, "acl-out"); !out.Set.Verdict || len(out.Elements) != 0 {
		t.Errorf("acl-out map %+v, want an empty verdict map", out)
	}

	// Defined sets: named interval sets of what entries name; the port
	// set no entry names is not made.
	want := map[string]struct {
		kt    nftables.SetDatatype
		elems []Element
	}{
		"acl-pfx4-mgmt": {nftables.TypeIPAddr, []Element{
			Prefix(netip.MustParsePrefix("192.0.2.0/24")), Prefix(netip.MustParsePrefix("198.51.100.0/24"))}},
		"acl-pfx6-mgmt": {nftables.TypeIP6Addr, []Element{Prefix(netip.MustParsePrefix("2001:db8:100::/48"))}},
		"acl-port-ssh":  {nftables.TypeInetService, []Element{{Key: []byte{0, 22}, KeyEnd: []byte{0, 22}}}},
	}
	var names []string
	for _, s := range a.Sets[2:] {
		names = append(names, s.Set.Name)
		w, ok := want[s.Set.Name]
		if !ok {
			continue
		}
		if !s.Set.Interval || s.Set.Verdict || s.Set.KeyType.Name != w.kt.Name {
			t.Errorf("set %s: %+v, want an interval set of %s", s.Set.Name, s.Set, w.kt.Name)
		}
		if fmt.Sprint(s.Elements) != fmt.Sprint(w.elems) {
			t.Errorf("set %s elements %v, want %v", s.Set.Name, s.Elements, w.elems)
		}
	}
	if !slices.Equal(names, []string{"acl-pfx4-mgmt", "acl-pfx6-mgmt", "acl-port-ssh"}) {
		t.Errorf("defined sets %v, want acl-pfx4-mgmt, acl-pfx6-mgmt, acl-port-ssh", names)
	}

	// Entry 10 names the sets, not their members.
	var lookups []string
	for _, e := range v4.Rules[0].Exprs {
		if l, ok := e.(*expr.Lookup); ok {
			lookups = append(lookups, l.SetName)
		}
	}
	if !slices.Equal(lookups, []string{"acl-pfx4-mgmt", "acl-port-ssh"}) {
		t.Errorf("entry 10 looks up %v, want acl-pfx4-mgmt, acl-port-ssh", lookups)
	}
}

// TestCompileACLEntryExprs checks what one entry compiles to, expression
// by expression: ip saddr 10.1.0.0/16 meta l4proto tcp tcp dport 22
// counter log drop.
func TestCompileACLEntryExprs(t *testing.T) {
	a := CompileACL(exampleACL())
	got := findChain(t, a, "acl-in-4-host1-in").Rules[1].Exprs
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 1, 0, 0}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 22}},
		&expr.Counter{},
		&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte("switchd acl host1-in ACL_IPV4 20 DROP: ")},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	if !slices.Equal(dump(got), dump(want)) {
		t.Errorf("entry 20:\n got %+v\nwant %+v", dump(got), dump(want))
	}

	// IPv6: the hosts' /48 at the IPv6 source offset.
	got6 := findChain(t, a, "acl-in-6-host1-in").Rules[1].Exprs
	p := got6[2].(*expr.Payload)
	m := got6[3].(*expr.Bitwise)
	if p.Offset != 8 || p.Len != 16 || !bytes.Equal(m.Mask, append(bytes.Repeat([]byte{0xff}, 6), make([]byte, 10)...)) {
		t.Errorf("IPv6 entry 20 loads %+v masked %x, want saddr (8, 16) masked to /48", p, m.Mask)
	}
}

func dump(es []expr.Any) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%T%+v", e, e))
	}
	return out
}

// TestCompileACLMatches covers the matches the example lacks: sequence
// order, DSCP lists, hop limit, port ranges, TCP flags, REJECT, mixed
// entries, egress, a single bound set jumped to directly, ACCEPT as a
// return.
func TestCompileACLMatches(t *testing.T) {
	hop := uint8(1)
	in := &ACLIntent{
		Sets: []ACLSet{{Name: "m x", Type: ACLMixed, Entries: []ACLEntry{
			{Seq: 30, Action: ACLDrop},
			{Seq: 5, Family: ACLIPv6, DSCP: []uint8{10, 46}, HopLimit: &hop, Action: ACLAccept},
			{Seq: 7, Family: ACLIPv4, Protocol: ProtoTCP, SrcPorts: PortMatch{Ranges: []PortRange{{1024, 65535}}},
				TCPFlags: &TCPFlagMatch{Mask: TCPSyn | TCPAck, Value: TCPSyn}, Action: ACLReject},
			{Seq: 8, Family: ACLIPv4, Protocol: ProtoUDP, TCPFlags: nil, Action: ACLReject},
		}}},
		Bindings: []ACLBinding{{Interface: "swp1", Egress: []ACLSetKey{{"m x", ACLMixed}}}},
	}
	a := CompileACL(in)
	c := findChain(t, a, "acl-out-m-m x")
	want := []string{"acl out ACL_MIXED 5/dscp10 m x", "acl out ACL_MIXED 5/dscp46 m x",
		"acl out ACL_MIXED 7 m x", "acl out ACL_MIXED 8 m x", "acl out ACL_MIXED 30 m x"}
	if got := ruleIDs(c); !slices.Equal(got, want) {
		t.Errorf("rules %v, want %v (by sequence id, a rule per DSCP value)", got, want)
	}
	if out := findSet(t, a, "acl-out"); len(out.Elements) != 1 || out.Elements[0].Jump != "acl-out-m-m x" {
		t.Errorf("acl-out %+v: want swp1 → the set's chain directly", out.Elements)
	}
	has := func(r ChainRule, want expr.Any) bool {
		return slices.ContainsFunc(r.Exprs, func(e expr.Any) bool { return fmt.Sprintf("%T%+v", e, e) == fmt.Sprintf("%T%+v", want, want) })
	}
	for _, tc := range []struct {
		rule int
		want expr.Any
	}{
		{0, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x0f, 0xc0}, Xor: []byte{0, 0}}},
		{0, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02, 0x80}}}, // DSCP 10 << 6
		{1, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x0b, 0x80}}}, // DSCP 46 << 6
		{0, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1}},
		{2, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{4, 0}, ToData: []byte{255, 255}}},
		{2, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1}},
		{2, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{TCPSyn | TCPAck}, Xor: []byte{0}}},
		{2, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{TCPSyn}}},
		{2, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}},
		{3, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}},
		{4, &expr.Verdict{Kind: expr.VerdictDrop}},
		{0, &expr.Verdict{Kind: expr.VerdictReturn}}, // ACCEPT ends the set, not the hook
	} {
		if !has(c.Rules[tc.rule], tc.want) {
			t.Errorf("rule %s lacks %T%+v:\n%v", c.Rules[tc.rule].ID, tc.want, tc.want, dump(c.Rules[tc.rule].Exprs))
		}
	}
	// A mixed entry without ipv4/ipv6 matches both families: no nfproto.
	if len(c.Rules[4].Exprs) != 2 {
		t.Errorf("entry 30 = %v, want counter and drop only", dump(c.Rules[4].Exprs))
	}
	if a := CompileACL(&ACLIntent{}); len(a.Chains)+len(a.Sets) != 0 {
		t.Errorf("no ACL compiled to %v chains, %d sets", chainNames(a.Chains), len(a.Sets))
	}
}

func TestACLLogPrefix(t *testing.T) {
	long := ACLSetKey{strings.Repeat("x", 200), ACLMixed}
	got := aclLogPrefix(long, &ACLEntry{Seq: 4294967295, Action: ACLReject})
	if len(got) != 127 || !strings.HasSuffix(got, "x ACL_MIXED 4294967295 REJECT: ") {
		t.Errorf("log prefix %q (%d bytes), want 127 bytes ending in the entry", got, len(got))
	}
}

func TestACLMergeRanges(t *testing.T) {
	p := func(s string) Element { return Prefix(netip.MustParsePrefix(s)) }
	port := func(a, b uint16) Element { return Element{Key: aclBE16(a), KeyEnd: aclBE16(b)} }
	for _, tc := range []struct {
		in, want []Element
	}{
		{[]Element{p("11.0.0.0/8"), p("10.1.0.0/16"), p("10.0.0.0/8")}, []Element{{Key: []byte{10, 0, 0, 0}, KeyEnd: []byte{11, 255, 255, 255}}}},
		{[]Element{p("192.0.2.0/25"), p("192.0.2.192/26")}, []Element{p("192.0.2.0/25"), p("192.0.2.192/26")}},
		{[]Element{p("10.0.0.0/8"), p("0.0.0.0/0"), p("255.0.0.0/8")}, []Element{p("0.0.0.0/0")}},
		{[]Element{port(26, 30), port(22, 22), port(20, 25), port(40, 40)}, []Element{port(20, 30), port(40, 40)}},
	} {
		if got := aclMergeRanges(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("merge %v = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestACLRuleIDs(t *testing.T) {
	for _, id := range []ACLRuleID{
		{Set: ACLSetKey{"host1-in", ACLIPv4}, Seq: 10, Ingress: true},
		{Set: ACLSetKey{"a b/c", ACLMixed}, Seq: 4294967295},
	} {
		got, ok := ParseACLRuleID(id.String())
		if !ok || got != id {
			t.Errorf("ParseACLRuleID(%q) = %+v, %v; want %+v", id.String(), got, ok, id)
		}
	}
	for _, s := range []string{"vmap acl-in", "jump acl-in-4-x", "acl in ACL_L2 1 x", "acl up ACL_IPV4 1 x", "acl in ACL_IPV4 x y"} {
		if id, ok := ParseACLRuleID(s); ok {
			t.Errorf("ParseACLRuleID(%q) = %+v, want not an entry", s, id)
		}
	}
	// Counters of one entry add up over directions and DSCP rules.
	got := ACLCounters([]RuleCounter{
		{ID: "acl in ACL_IPV6 5/dscp10 m", Packets: 1, Bytes: 100},
		{ID: "acl in ACL_IPV6 5/dscp46 m", Packets: 2, Bytes: 200},
		{ID: "acl out ACL_IPV6 5 m", Packets: 4, Bytes: 400},
		{ID: "acl in ACL_IPV4 5 m", Packets: 8, Bytes: 800},
		{ID: "failsafe", Packets: 16, Bytes: 1600},
	})
	want := []ACLEntryCounter{{ACLSetKey{"m", ACLIPv4}, 5, 8, 800}, {ACLSetKey{"m", ACLIPv6}, 5, 7, 700}}
	if !slices.Equal(got, want) {
		t.Errorf("ACLCounters = %+v, want %+v", got, want)
	}
}

// TestEngineSetACL hands compiled ACLs to the Engine's ACL slot and then
// changed ones: what the new ones lack is deleted, a binding moved to
// another interface is a map element changed; the base chains jump to
// the ACL slots.
func TestEngineSetACL(t *testing.T) {
	e := NewEngine(nil)
	tb := e.Table()
	must(t, e.SetACL(*exampleACL()))
	c1 := tb.Counts()
	if c1.Chains != 6 || c1.Rules != 1+2+1+2+2+2 || c1.Sets != 5 || c1.Elements != 1+2+1+1 {
		t.Errorf("counts %+v after the first SetACL", c1)
	}
	for _, b := range BaseChains(e.filled) {
		if b.Name != "prerouting" && !slices.ContainsFunc(b.Rules, func(r ChainRule) bool { return strings.HasPrefix(r.ID, "jump acl-") }) {
			t.Errorf("base chain %s %v jumps to no ACL slot", b.Name, ruleIDs(b))
		}
	}
	in := exampleACL()
	in.Bindings[0].Interface = "host2"
	in.Bindings[0].Ingress = in.Bindings[0].Ingress[:1]
	in.Defined.IPv4[0].Prefixes = in.Defined.IPv4[0].Prefixes[:1]
	must(t, e.SetACL(*in))
	for _, gone := range []string{"acl-in-if-host1", "acl-in-6-host1-in"} {
		if _, ok := tb.chains[gone]; ok {
			t.Errorf("chain %s still desired", gone)
		}
	}
	if st := tb.sets["acl-pfx6-mgmt"]; st != nil && st.wanted {
		t.Error("acl-pfx6-mgmt still desired (no longer used)")
	}
	m := tb.sets["acl-in"].want
	if _, ok := m[string(IfName("host2"))]; len(m) != 1 || !ok {
		t.Errorf("acl-in elements %v, want host2 only", m)
	}
	if got := len(tb.sets["acl-pfx4-mgmt"].want); got != 1 {
		t.Errorf("acl-pfx4-mgmt has %d elements, want 1", got)
	}
	must(t, e.SetACL(ACLIntent{}))
	if len(tb.chains) != 0 {
		t.Errorf("chains %v still desired without ACLs", slices.Collect(maps.Keys(tb.chains)))
	}
	for name, st := range tb.sets {
		if st.wanted {
			t.Errorf("set %s still desired without ACLs", name)
		}
	}
}

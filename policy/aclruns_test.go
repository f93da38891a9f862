package policy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// benchACL is the data-plane benchmark's ACL set of n entries: n-1 DROP
// entries of one shape (TCP from a /32 of 198.18/15 to one port each),
// none overlapping, and a last ACCEPT of any IPv4.
func benchACL(n int) ACLSet {
	entries := make([]ACLEntry, 0, n)
	for i := range n - 1 {
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		entries = append(entries, ACLEntry{Seq: uint32(i + 1), Family: ACLIPv4, Protocol: ProtoTCP,
			Src: AddrMatch{Prefix: src}, DstPorts: PortMatch{Ranges: []PortRange{{uint16(10000 + i), uint16(10000 + i)}}}, Action: ACLDrop})
	}
	entries = append(entries, ACLEntry{Seq: uint32(n), Family: ACLIPv4, Action: ACLAccept})
	return ACLSet{Name: "bench", Type: ACLIPv4, Entries: entries}
}

// TestCompileACLRunsConstantRules: an ACL of one shape compiles to the same
// two rules at 100, 1,000 and 10,000 entries (the run's lookup and the
// last ACCEPT); the run's set has one element per entry, named by the
// entry's rule ID, with a counter each: a hash set, as every entry is one
// host, protocol and port.
func TestCompileACLRunsConstantRules(t *testing.T) {
	for _, n := range []int{100, 1000, 10000} {
		set := benchACL(n)
		start := time.Now()
		a := CompileACL(&ACLIntent{Sets: []ACLSet{set}, Bindings: []ACLBinding{{Interface: "swp1", Ingress: []ACLSetKey{set.Key()}}}})
		took := time.Since(start)
		c := findChain(t, a, "acl-in-4-bench")
		want := []string{"aclrun in ACL_IPV4 1 bench", fmt.Sprintf("acl in ACL_IPV4 %d bench", n)}
		if got := ruleIDs(c); !slices.Equal(got, want) {
			t.Fatalf("%d entries: rules %v, want %v", n, got, want)
		}
		s := findSet(t, a, "acl-in-4-bench.1.drop-ip-saddr-l4proto-dport.exact")
		kt := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
		if s.Set.Interval || !s.Set.Counter || s.Set.KeyType.Name != kt.Name || len(s.Elements) != n-1 {
			t.Fatalf("%d entries: run set %+v with %d elements, want a hash set of %s with counters, %d elements",
				n, s.Set, len(s.Elements), kt.Name, n-1)
		}
		e := s.Elements[2]
		if e.ID != "acl in ACL_IPV4 3 bench" || !bytes.Equal(e.Key, []byte{198, 18, 0, 2, 6, 0, 0, 0, 0x27, 0x12, 0, 0}) || e.KeyEnd != nil {
			t.Errorf("element of entry 3: %+v, want 198.18.0.2 . tcp . 10002 named by the entry", e)
		}
		t.Logf("%d entries compiled in %v", n, took)
	}
}

// TestCompileACLRunBoundaries: what ends a run and what stays a rule of
// its own, in sequence order.
func TestCompileACLRunBoundaries(t *testing.T) {
	host := func(i int) AddrMatch {
		return AddrMatch{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32)}
	}
	dport := func(a, b uint16) PortMatch { return PortMatch{Ranges: []PortRange{{a, b}}} }
	tcp := func(seq uint32, src int, p uint16, act ACLAction) ACLEntry {
		return ACLEntry{Seq: seq, Family: ACLIPv4, Src: host(src), Protocol: ProtoTCP, DstPorts: dport(p, p), Action: act}
	}
	var es []ACLEntry
	for i := range 4 { // run 1..4
		es = append(es, tcp(uint32(1+i), i, 80, ACLDrop))
	}
	// 5 overlaps 2 (10.0.0.1 tcp/80 lies in both): a new run 5..8.
	es = append(es, ACLEntry{Seq: 5, Family: ACLIPv4, Src: host(1), Protocol: ProtoTCP, DstPorts: dport(70, 90), Action: ACLDrop})
	for i := range 3 {
		es = append(es, tcp(uint32(6+i), 10+i, 80, ACLDrop))
	}
	// Three ACCEPTs: too short for a run.
	for i := range 3 {
		es = append(es, tcp(uint32(9+i), i, 80, ACLAccept))
	}
	// Logged, DSCP, defined set: rules of their own, even in a row.
	for i := range 4 {
		es = append(es, ACLEntry{Seq: uint32(12 + i), Family: ACLIPv4, Src: host(i), Action: ACLDrop, Log: true})
	}
	for i := range 4 {
		es = append(es, ACLEntry{Seq: uint32(16 + i), Family: ACLIPv4, Src: host(i), DSCP: []uint8{uint8(i)}, Action: ACLDrop})
	}
	for i := range 4 {
		es = append(es, ACLEntry{Seq: uint32(20 + i), Family: ACLIPv4, Src: host(i), DstPorts: PortMatch{Set: "p"}, Protocol: ProtoUDP, Action: ACLDrop})
	}
	// REJECT answers TCP with a reset, the rest with ICMP: two runs.
	for i := range 4 {
		es = append(es, tcp(uint32(24+i), i, 80, ACLReject))
	}
	for i := range 4 {
		es = append(es, ACLEntry{Seq: uint32(28 + i), Family: ACLIPv4, Src: host(i), Protocol: ProtoUDP, DstPorts: dport(53, 53), Action: ACLReject})
	}
	// Another shape (no protocol): a run of its own; a mixed entry without
	// addresses matches both families.
	for i := range 4 {
		es = append(es, ACLEntry{Seq: uint32(32 + i), Family: ACLIPv4, Src: host(i), Action: ACLDrop})
	}
	for i := range 4 {
		es = append(es, ACLEntry{Seq: uint32(36 + i), Protocol: ProtoUDP, DstPorts: dport(uint16(i), uint16(i)), Action: ACLDrop})
	}
	a := CompileACL(&ACLIntent{
		Sets:     []ACLSet{{Name: "x", Type: ACLMixed, Entries: es}},
		Defined:  DefinedSets{Ports: []PortSet{{Name: "p", Ranges: []PortRange{{1, 2}}}}},
		Bindings: []ACLBinding{{Interface: "swp1", Egress: []ACLSetKey{{"x", ACLMixed}}}},
	})
	c := findChain(t, a, "acl-out-m-x")
	want := []string{"aclrun out ACL_MIXED 1 x", "aclrun out ACL_MIXED 5 x"}
	for seq := 9; seq < 24; seq++ {
		want = append(want, fmt.Sprintf("acl out ACL_MIXED %d x", seq))
	}
	want = append(want, "aclrun out ACL_MIXED 24 x", "aclrun out ACL_MIXED 28 x", "aclrun out ACL_MIXED 32 x", "aclrun out ACL_MIXED 36 x")
	if got := ruleIDs(c); !slices.Equal(got, want) {
		t.Errorf("rules\n %v\nwant\n %v", got, want)
	}
	var runSets []string
	for _, s := range a.Sets {
		if strings.HasPrefix(s.Set.Name, "acl-out-m-x.") {
			runSets = append(runSets, fmt.Sprintf("%s/%d", s.Set.Name, len(s.Elements)))
		}
	}
	// Runs of hosts and single ports are hash sets; run 5 has a range.
	wantSets := []string{"acl-out-m-x.1.drop-ip-saddr-l4proto-dport.exact/4", "acl-out-m-x.5.drop-ip-saddr-l4proto-dport/4",
		"acl-out-m-x.24.reject-tcp-ip-saddr-l4proto-dport.exact/4", "acl-out-m-x.28.reject-ip-saddr-l4proto-dport.exact/4",
		"acl-out-m-x.32.drop-ip-saddr.exact/4", "acl-out-m-x.36.drop-inet-l4proto-dport.exact/4"}
	if !slices.Equal(runSets, wantSets) {
		t.Errorf("run sets %v, want %v", runSets, wantSets)
	}
	// The REJECT runs answer as their entries would.
	for i, want := range map[int]*expr.Reject{len(want) - 4: {Type: unix.NFT_REJECT_TCP_RST},
		len(want) - 3: {Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}} {
		r := c.Rules[i]
		if got := fmt.Sprintf("%+v", r.Exprs[len(r.Exprs)-1]); got != fmt.Sprintf("%+v", want) {
			t.Errorf("rule %s ends in %s, want %+v", r.ID, got, want)
		}
	}
	// The mixed run checks no family and loads protocol and port into
	// consecutive registers.
	last := dump(c.Rules[len(c.Rules)-1].Exprs)
	wantLast := dump([]expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG32_00},
		&expr.Payload{DestRegister: unix.NFT_REG32_01, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: unix.NFT_REG32_00, SetName: "acl-out-m-x.36.drop-inet-l4proto-dport.exact"},
		&expr.Verdict{Kind: expr.VerdictDrop},
	})
	if !slices.Equal(last, wantLast) {
		t.Errorf("mixed run rule\n %v\nwant\n %v", last, wantLast)
	}
}

// TestCompileACLRunsFirstMatch checks, over random ACLs whose entries
// often share shapes and overlap, that the compiled chain — run through a
// small interpreter of the expressions it uses, sets included — gives
// every packet the verdict of the first entry it matches, and counts it
// on that entry and no other.
func TestCompileACLRunsFirstMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1000))
	runs, packets := 0, 0
	for round := range 300 {
		set := randomACL(rng, round)
		a := CompileACL(&ACLIntent{Sets: []ACLSet{set}, Bindings: []ACLBinding{{Interface: "swp1", Ingress: []ACLSetKey{set.Key()}}}})
		c := findChain(t, a, aclSetChain("in", set.Key()))
		sets := map[string]ACLTableSet{}
		for _, s := range a.Sets {
			sets[s.Set.Name] = s
		}
		for _, r := range c.Rules {
			if strings.HasPrefix(r.ID, "aclrun ") {
				runs++
			}
		}
		for range 200 {
			p := randomPacket(rng)
			wantV, wantSeq := firstMatch(set.Entries, p)
			gotV, counted := runChain(t, c, sets, p)
			packets++
			if gotV != wantV || !slices.Equal(counted, wantSeq) {
				t.Fatalf("round %d, packet %+v: chain says %s counted on %v; the entries say %s on %v\nentries %+v\nrules %v",
					round, p, gotV, counted, wantV, wantSeq, set.Entries, ruleIDs(c))
			}
		}
	}
	if runs < 300 {
		t.Errorf("only %d runs in 300 ACLs: the test says little", runs)
	}
	t.Logf("%d runs, %d packets", runs, packets)
}

// aclPacket is what the interpreter and firstMatch look at.
type aclPacket struct {
	v6           bool
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16 // for ICMP: the first four bytes of its header
}

func randomPacket(rng *rand.Rand) aclPacket {
	p := aclPacket{v6: rng.IntN(4) == 0, proto: []uint8{ProtoTCP, ProtoUDP, ProtoICMP}[rng.IntN(3)],
		sport: uint16(rng.IntN(12)), dport: uint16(rng.IntN(12))}
	p.src, p.dst = randomAddr(rng, p.v6), randomAddr(rng, p.v6)
	return p
}

func randomAddr(rng *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(rng.IntN(16))})
	}
	return netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(16))})
}

// randomACL is blocks of entries of one shape and action with random
// values from small ranges (so they overlap now and then), now and then
// a logged entry.
func randomACL(rng *rand.Rand, round int) ACLSet {
	var es []ACLEntry
	seq := uint32(0)
	for range 1 + rng.IntN(6) {
		fam := []ACLType{ACLIPv4, ACLIPv6, 0}[rng.IntN(3)]
		src, dst := rng.IntN(2) == 0, rng.IntN(3) == 0
		proto := []uint8{0, ProtoTCP, ProtoTCP, ProtoUDP, ProtoICMP}[rng.IntN(5)]
		sport, dport := rng.IntN(4) == 0, rng.IntN(2) == 0
		act := []ACLAction{ACLDrop, ACLDrop, ACLAccept, ACLReject}[rng.IntN(4)]
		for range 1 + rng.IntN(12) {
			seq += 1 + uint32(rng.IntN(3))
			e := ACLEntry{Seq: seq, Family: fam, Action: act, Log: rng.IntN(30) == 0}
			pfx := func() AddrMatch {
				a := randomAddr(rng, fam == ACLIPv6)
				return AddrMatch{Prefix: netip.PrefixFrom(a, a.BitLen()-[]int{0, 0, 0, 1, 2, 3}[rng.IntN(6)]).Masked()}
			}
			if fam != 0 && src {
				e.Src = pfx()
			}
			if fam != 0 && dst {
				e.Dst = pfx()
			}
			e.Protocol = proto
			ports := func() PortMatch {
				a := uint16(rng.IntN(12))
				return PortMatch{Ranges: []PortRange{{a, a + []uint16{0, 0, 0, 1, 3}[rng.IntN(5)]}}}
			}
			if HasPorts(proto) && sport {
				e.SrcPorts = ports()
			}
			if HasPorts(proto) && dport {
				e.DstPorts = ports()
			}
			es = append(es, e)
		}
	}
	return ACLSet{Name: fmt.Sprint("r", round), Type: ACLMixed, Entries: es}
}

// firstMatch is the ACL's meaning: the first entry that matches decides
// and counts.
func firstMatch(es []ACLEntry, p aclPacket) (string, []uint32) {
	in := func(m AddrMatch, a netip.Addr) bool { return !m.Prefix.IsValid() || m.Prefix.Contains(a) }
	port := func(m PortMatch, v uint16) bool {
		return m.Any() || m.Ranges[0].First <= v && v <= m.Ranges[0].Last
	}
	for _, e := range es {
		if (e.Family == ACLIPv4 && p.v6) || (e.Family == ACLIPv6 && !p.v6) || !in(e.Src, p.src) || !in(e.Dst, p.dst) ||
			(e.Protocol != 0 && e.Protocol != p.proto) || !port(e.SrcPorts, p.sport) || !port(e.DstPorts, p.dport) {
			continue
		}
		return map[ACLAction]string{ACLAccept: "accept", ACLDrop: "drop", ACLReject: "reject"}[e.Action], []uint32{e.Seq}
	}
	return "pass", nil
}

// runChain interprets the chain's rules for p: the expressions the ACL
// compiler uses, registers laid out as the kernel's (NFT_REG_1 and
// NFT_REG32_00 are the same bytes), set lookups against the compiled
// elements. It returns the verdict and the entries whose rule or element
// counted the packet.
func runChain(t *testing.T, c Chain, sets map[string]ACLTableSet, p aclPacket) (string, []uint32) {
	t.Helper()
	nh := make([]byte, 40)
	if p.v6 {
		copy(nh[8:], p.src.AsSlice())
		copy(nh[24:], p.dst.AsSlice())
	} else {
		copy(nh[12:], p.src.AsSlice())
		copy(nh[16:], p.dst.AsSlice())
	}
	th := append(aclBE16(p.sport), aclBE16(p.dport)...)
	var regs [20 * 4]byte
	reg := func(r uint32) []byte {
		if r <= unix.NFT_REG_4 {
			return regs[r*16:]
		}
		return regs[(r-unix.NFT_REG32_00+4)*4:]
	}
	store := func(r uint32, v []byte) {
		d := reg(r)
		clear(d[:(len(v)+3)/4*4])
		copy(d, v)
	}
	var counted []uint32
	count := func(id string) {
		rid, ok := ParseACLRuleID(id)
		if !ok {
			t.Fatalf("counter of %q, not an entry", id)
		}
		counted = append(counted, rid.Seq)
	}
rules:
	for _, r := range c.Rules {
		for _, x := range r.Exprs {
			switch x := x.(type) {
			case *expr.Meta:
				v := p.proto
				if x.Key == expr.MetaKeyNFPROTO {
					v = map[bool]uint8{false: unix.NFPROTO_IPV4, true: unix.NFPROTO_IPV6}[p.v6]
				}
				store(x.Register, []byte{v})
			case *expr.Payload:
				h := nh
				if x.Base == expr.PayloadBaseTransportHeader {
					h = th
				}
				store(x.DestRegister, h[x.Offset:x.Offset+x.Len])
			case *expr.Bitwise:
				v := slices.Clone(reg(x.SourceRegister)[:x.Len])
				for i := range v {
					v[i] = v[i]&x.Mask[i] ^ x.Xor[i]
				}
				copy(reg(x.DestRegister), v)
			case *expr.Cmp:
				eq := bytes.Equal(reg(x.Register)[:len(x.Data)], x.Data)
				if eq != (x.Op == expr.CmpOpEq) {
					continue rules
				}
			case *expr.Range:
				v := reg(x.Register)[:len(x.FromData)]
				if bytes.Compare(v, x.FromData) < 0 || bytes.Compare(v, x.ToData) > 0 {
					continue rules
				}
			case *expr.Lookup:
				s, ok := sets[x.SetName]
				if !ok {
					t.Fatalf("rule %s looks up set %s, which is not compiled", r.ID, x.SetName)
				}
				key := reg(x.SourceRegister)[:s.Set.KeyType.Bytes]
				var hits []Element
				for _, e := range s.Elements {
					if setElementHas(s.Set, e, key) {
						hits = append(hits, e)
					}
				}
				if len(hits) > 1 {
					t.Fatalf("set %s: %d elements match %x (the kernel refuses overlaps)", x.SetName, len(hits), key)
				}
				if len(hits) == 0 {
					continue rules
				}
				if s.Set.Counter {
					count(hits[0].ID)
				}
			case *expr.Counter:
				count(r.ID)
			case *expr.Log:
			case *expr.Verdict:
				switch x.Kind {
				case expr.VerdictDrop:
					return "drop", counted
				case expr.VerdictReturn:
					return "accept", counted
				}
				t.Fatalf("rule %s: verdict %v", r.ID, x.Kind)
			case *expr.Reject:
				return "reject", counted
			default:
				t.Fatalf("rule %s: expression %T the interpreter lacks", r.ID, x)
			}
		}
	}
	return "pass", counted
}

// setElementHas reports whether key falls in e: for a concatenation, each
// field (padded to 4 bytes) in its own range.
func setElementHas(s Set, e Element, key []byte) bool {
	end := e.KeyEnd
	if end == nil {
		end = e.Key
	}
	types := nftables.ConcatSetTypeElements(s.KeyType)
	if len(types) < 2 {
		return bytes.Compare(e.Key, key) <= 0 && bytes.Compare(key, end) <= 0
	}
	off := 0
	for _, ft := range types {
		n := int(ft.Bytes+3) / 4 * 4
		if bytes.Compare(e.Key[off:off+n], key[off:off+n]) > 0 || bytes.Compare(key[off:off+n], end[off:off+n]) > 0 {
			return false
		}
		off += n
	}
	return true
}

// TestMixedACLCompiles logs what the data-plane benchmark's mixed ACL
// compiles to (rules in its chain, runs, elements) and checks that it
// still makes some runs, which is what the benchmark's variant measures.
func TestMixedACLCompiles(t *testing.T) {
	set, defined := mixedACL()
	a := CompileACL(&ACLIntent{Sets: []ACLSet{set}, Defined: defined, Bindings: []ACLBinding{{Interface: "swp1", Ingress: []ACLSetKey{set.Key()}}}})
	c := findChain(t, a, "acl-in-4-mixed")
	runs, elements := 0, 0
	for _, s := range a.Sets {
		if strings.HasPrefix(s.Set.Name, "acl-in-4-mixed.") {
			runs++
			elements += len(s.Elements)
		}
	}
	t.Logf("mixed ACL of %d entries: %d rules, %d of them runs of %d entries", len(set.Entries), len(c.Rules), runs, elements)
	if runs == 0 || len(c.Rules) >= len(set.Entries) {
		t.Errorf("mixed ACL: %d rules, %d runs", len(c.Rules), runs)
	}
}

package policy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the ACL objects in the table. Chains of ACL sets and the
// defined sets carry the OpenConfig names after a fixed prefix.
const (
	aclMapIn  = "acl-in"  // iifname → the chain of what is bound to it
	aclMapOut = "acl-out" // oifname → likewise
)

// ACLTable is an ACLIntent compiled to objects of the table.
//
// Shape: the ACL slots of the layout (SlotACLInput, SlotACLForward,
// SlotACLOutput) look the packet's interface up in a verdict map —
// iifname in acl-in for ingress (input, forward), oifname in acl-out for
// egress (forward, output) — whose element jumps to the chain of the ACL
// set bound there, or to a small chain of the interface that jumps to
// each of several bound sets in turn. So binding or unbinding an
// interface changes a map element, never a rule. An ACL set bound in a
// direction has one chain for it, one rule per entry in sequence order,
// each with a counter; its rule ID names the set, type, direction and
// sequence id (ParseACLRuleID), so counters read back map to
// /acl/acl-sets/acl-set[name][type]/acl-entries/acl-entry[sequence-id].
// A run of consecutive entries that one set lookup can stand for exactly
// is one rule instead, its entries elements with counters of their own
// under the same IDs (aclruns.go), so a large ACL costs a few lookups
// per packet, not a rule per entry. Defined sets an entry names become named interval sets, filled with
// merged ranges (the kernel refuses overlapping intervals).
//
// Verdicts: DROP and REJECT end the packet. ACCEPT ends the set (a
// return), not the hook: an accept in a chain jumped to would end the
// base chain and skip what comes after the ACLs in it (the egress ACL
// of a forwarded packet, workload policy). So a packet passes an
// interface's ACLs in a direction when no set bound there drops it, and
// an ACL cannot open what workload policy closes.
type ACLTable struct {
	Chains []Chain
	Sets   []ACLTableSet
}

// ACLTableSet is a set with its elements.
type ACLTableSet struct {
	Set      Set
	Elements []Element
}

// CompileACL compiles in. It does not fail: in was validated by
// switchd/config. An intent without ACL sets or bindings compiles to
// nothing; any ACL makes all slot chains and maps, so that bindings
// added later are map elements only.
func CompileACL(in *ACLIntent) *ACLTable {
	out := &ACLTable{}
	if len(in.Sets) == 0 && len(in.Bindings) == 0 {
		return out
	}
	sets := map[ACLSetKey]*ACLSet{}
	for i := range in.Sets {
		sets[in.Sets[i].Key()] = &in.Sets[i]
	}
	c := &aclCompiler{sets: sets, done: map[string]bool{}, used: map[string]bool{}}
	maps := map[string]*ACLTableSet{}
	for _, m := range []string{aclMapIn, aclMapOut} {
		maps[m] = &ACLTableSet{Set: Set{Name: m, KeyType: nftables.TypeIFName, Verdict: true}}
	}
	vmap := func(m string, key expr.MetaKey) ChainRule {
		return ChainRule{ID: "vmap " + m, Exprs: []expr.Any{
			&expr.Meta{Key: key, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: m, IsDestRegSet: true, DestRegister: 0},
		}}
	}
	in4, out4 := vmap(aclMapIn, expr.MetaKeyIIFNAME), vmap(aclMapOut, expr.MetaKeyOIFNAME)
	out.Chains = append(out.Chains,
		Chain{Name: SlotACLInput, Rules: []ChainRule{in4}},
		Chain{Name: SlotACLForward, Rules: []ChainRule{in4, out4}},
		Chain{Name: SlotACLOutput, Rules: []ChainRule{out4}},
	)
	for _, b := range in.Bindings {
		for _, d := range []struct {
			dir  string
			keys []ACLSetKey
			m    string
		}{{"in", b.Ingress, aclMapIn}, {"out", b.Egress, aclMapOut}} {
			if len(d.keys) == 0 {
				continue
			}
			jump := c.setChain(d.dir, d.keys[0])
			if len(d.keys) > 1 {
				// Several sets: each in turn (an ACCEPT returns here).
				ch := Chain{Name: "acl-" + d.dir + "-if-" + b.Interface}
				for _, k := range d.keys {
					ch.Rules = append(ch.Rules, jumpRule(c.setChain(d.dir, k)))
				}
				c.chains = append(c.chains, ch)
				jump = ch.Name
			}
			ms := maps[d.m]
			ms.Elements = append(ms.Elements, Element{Key: IfName(b.Interface), Jump: jump})
		}
	}
	slices.SortFunc(c.chains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	out.Chains = append(out.Chains, c.chains...)
	out.Sets = append(out.Sets, *maps[aclMapIn], *maps[aclMapOut])
	out.Sets = append(out.Sets, c.definedSets(&in.Defined)...)
	out.Sets = append(out.Sets, c.runSets...)
	return out
}

type aclCompiler struct {
	sets   map[ACLSetKey]*ACLSet
	chains []Chain
	done   map[string]bool // chains made
	used   map[string]bool // defined sets entries name (table names)
	// runSets are the sets of runs of entries (aclruns.go).
	runSets []ACLTableSet
}

// aclSetChain names the chain of ACL set k in direction dir.
func aclSetChain(dir string, k ACLSetKey) string {
	fam := map[ACLType]string{ACLIPv4: "4", ACLIPv6: "6", ACLMixed: "m"}[k.Type]
	return "acl-" + dir + "-" + fam + "-" + k.Name
}

// Table names of defined sets.
func aclPrefixSetName(fam ACLType, name string) string {
	if fam == ACLIPv6 {
		return "acl-pfx6-" + name
	}
	return "acl-pfx4-" + name
}

func aclPortSetName(name string) string { return "acl-port-" + name }

// setChain makes (once) the chain of ACL set k in direction dir and
// returns its name.
func (c *aclCompiler) setChain(dir string, k ACLSetKey) string {
	name := aclSetChain(dir, k)
	if c.done[name] {
		return name
	}
	c.done[name] = true
	ch := Chain{Name: name}
	s := c.sets[k]
	if s != nil {
		entries := slices.Clone(s.Entries)
		slices.SortStableFunc(entries, func(a, b ACLEntry) int { return int(int64(a.Seq) - int64(b.Seq)) })
		ch.Rules = c.entriesRules(dir, name, k, entries)
	}
	c.chains = append(c.chains, ch)
	return name
}

// ACLRuleID is what the ID of an entry's rule says: the entry and the
// direction of the chain it is in.
type ACLRuleID struct {
	Set     ACLSetKey
	Seq     uint32
	Ingress bool
}

func (id ACLRuleID) String() string {
	dir := "out"
	if id.Ingress {
		dir = "in"
	}
	return fmt.Sprintf("acl %s %s %d %s", dir, id.Set.Type, id.Seq, id.Set.Name)
}

// ParseACLRuleID reads back the ID of an entry's rule (from Table.Counters);
// ok is false for any other rule. An entry compiled to several rules (a
// list of DSCP values) has IDs that differ after the sequence id, which
// parse to the same entry.
func ParseACLRuleID(s string) (id ACLRuleID, ok bool) {
	f := strings.SplitN(s, " ", 5)
	if len(f) != 5 || f[0] != "acl" || (f[1] != "in" && f[1] != "out") {
		return id, false
	}
	switch f[2] {
	case "ACL_IPV4":
		id.Set.Type = ACLIPv4
	case "ACL_IPV6":
		id.Set.Type = ACLIPv6
	case "ACL_MIXED":
		id.Set.Type = ACLMixed
	default:
		return id, false
	}
	seq, _, _ := strings.Cut(f[3], "/")
	n, err := strconv.ParseUint(seq, 10, 32)
	if err != nil {
		return id, false
	}
	id.Seq, id.Ingress, id.Set.Name = uint32(n), f[1] == "in", f[4]
	return id, true
}

// ACLEntryCounter is what an ACL entry matched, summed over the
// directions (and rules) it is compiled to: the entry's
// matched-packets and matched-octets.
type ACLEntryCounter struct {
	Set     ACLSetKey
	Seq     uint32
	Packets uint64
	Octets  uint64
}

// ACLCounters picks the ACL entries' counters out of Table.Counters,
// sorted by set name, type and sequence id.
func ACLCounters(rcs []RuleCounter) []ACLEntryCounter {
	type key struct {
		s   ACLSetKey
		seq uint32
	}
	sum := map[key]*ACLEntryCounter{}
	var out []ACLEntryCounter
	for _, rc := range rcs {
		id, ok := ParseACLRuleID(rc.ID)
		if !ok {
			continue
		}
		k := key{id.Set, id.Seq}
		if sum[k] == nil {
			sum[k] = &ACLEntryCounter{Set: id.Set, Seq: id.Seq}
		}
		sum[k].Packets += rc.Packets
		sum[k].Octets += rc.Bytes
	}
	for _, c := range sum {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ACLEntryCounter) int {
		if a.Set.Name != b.Set.Name {
			return strings.Compare(a.Set.Name, b.Set.Name)
		}
		if a.Set.Type != b.Set.Type {
			return int(a.Set.Type) - int(b.Set.Type)
		}
		return int(int64(a.Seq) - int64(b.Seq))
	})
	return out
}

// entryRules compiles one entry: one rule, or one per DSCP value of a
// list (a rule matches one value; a set per list would be a set per
// entry).
func (c *aclCompiler) entryRules(dir string, k ACLSetKey, e *ACLEntry) []ChainRule {
	id := ACLRuleID{Set: k, Seq: e.Seq, Ingress: dir == "in"}
	if len(e.DSCP) <= 1 {
		return []ChainRule{{ID: id.String(), Exprs: c.entryExprs(k, e, e.DSCP)}}
	}
	var out []ChainRule
	for _, d := range e.DSCP {
		// The DSCP goes after the sequence id, where ParseACLRuleID
		// ignores it: the name, last, may hold spaces.
		rid := fmt.Sprintf("acl %s %s %d/dscp%d %s", dir, k.Type, e.Seq, d, k.Name)
		out = append(out, ChainRule{ID: rid, Exprs: c.entryExprs(k, e, []uint8{d})})
	}
	return out
}

// Header offsets.
const (
	aclIP4Saddr, aclIP4Daddr, aclIP4TOS, aclIP4TTL          = 12, 16, 1, 8
	aclIP6Saddr, aclIP6Daddr, aclIP6Flow, aclIP6Hlim        = 8, 24, 0, 7
	aclSport, aclDport, aclTCPFlags                         = 0, 2, 13
	aclReg                                           uint32 = 1
)

func (c *aclCompiler) entryExprs(k ACLSetKey, e *ACLEntry, dscp []uint8) []expr.Any {
	var x []expr.Any
	v6 := e.Family == ACLIPv6
	switch e.Family {
	case ACLIPv4:
		x = append(x, aclMetaEq(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV4})...)
	case ACLIPv6:
		x = append(x, aclMetaEq(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV6})...)
	}
	addr := func(m AddrMatch, off4, off6 uint32) {
		off, n := off4, uint32(4)
		if v6 {
			off, n = off6, 16
		}
		switch {
		case m.Set != "":
			name := aclPrefixSetName(e.Family, m.Set)
			c.used[name] = true
			x = append(x, aclNetLoad(off, n), &expr.Lookup{SourceRegister: aclReg, SetName: name})
		case m.Prefix.IsValid() && m.Prefix.Bits() > 0:
			x = append(x, aclNetLoad(off, n))
			if m.Prefix.Bits() < int(n*8) {
				x = append(x, aclMask(n, aclPrefixMask(m.Prefix)))
			}
			x = append(x, aclEq(m.Prefix.Masked().Addr().AsSlice()))
		}
	}
	addr(e.Src, aclIP4Saddr, aclIP6Saddr)
	addr(e.Dst, aclIP4Daddr, aclIP6Daddr)
	if len(dscp) == 1 {
		if v6 {
			// DSCP is bits 4-9 of the first 16 (version, then traffic class).
			x = append(x, aclNetLoad(aclIP6Flow, 2), aclMask(2, []byte{0x0f, 0xc0}), aclEq(binary.BigEndian.AppendUint16(nil, uint16(dscp[0])<<6)))
		} else {
			x = append(x, aclNetLoad(aclIP4TOS, 1), aclMask(1, []byte{0xfc}), aclEq([]byte{dscp[0] << 2}))
		}
	}
	if e.HopLimit != nil {
		off := uint32(aclIP4TTL)
		if v6 {
			off = aclIP6Hlim
		}
		x = append(x, aclNetLoad(off, 1), aclEq([]byte{*e.HopLimit}))
	}
	if e.Protocol != 0 {
		x = append(x, aclMetaEq(expr.MetaKeyL4PROTO, []byte{e.Protocol})...)
	}
	port := func(m PortMatch, off uint32) {
		if m.Any() {
			return
		}
		x = append(x, &expr.Payload{DestRegister: aclReg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
		if m.Set != "" {
			name := aclPortSetName(m.Set)
			c.used[name] = true
			x = append(x, &expr.Lookup{SourceRegister: aclReg, SetName: name})
			return
		}
		r := m.Ranges[0] // OpenConfig gives one port or range per leaf
		if r.First == r.Last {
			x = append(x, aclEq(aclBE16(r.First)))
		} else {
			x = append(x, &expr.Range{Op: expr.CmpOpEq, Register: aclReg, FromData: aclBE16(r.First), ToData: aclBE16(r.Last)})
		}
	}
	port(e.SrcPorts, aclSport)
	port(e.DstPorts, aclDport)
	if f := e.TCPFlags; f != nil {
		x = append(x, &expr.Payload{DestRegister: aclReg, Base: expr.PayloadBaseTransportHeader, Offset: aclTCPFlags, Len: 1},
			aclMask(1, []byte{f.Mask}))
		if f.Any {
			x = append(x, &expr.Cmp{Op: expr.CmpOpNeq, Register: aclReg, Data: []byte{0}})
		} else {
			x = append(x, aclEq([]byte{f.Value}))
		}
	}
	x = append(x, &expr.Counter{})
	if e.Log {
		x = append(x, &expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(aclLogPrefix(k, e))})
	}
	return append(x, aclVerdict(e)...)
}

// aclVerdict ends the rule of e (or of a run e is in).
func aclVerdict(e *ACLEntry) []expr.Any {
	var x []expr.Any
	switch e.Action {
	case ACLAccept:
		x = append(x, &expr.Verdict{Kind: expr.VerdictReturn}) // see ACLTable
	case ACLDrop:
		x = append(x, &expr.Verdict{Kind: expr.VerdictDrop})
	case ACLReject:
		if e.Protocol == ProtoTCP {
			x = append(x, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
		} else {
			x = append(x, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
		}
	}
	return x
}

// aclLogPrefix starts the kernel log line of a logged entry, naming it
// as OpenConfig does. The kernel takes at most 127 bytes: a long set
// name is cut, the entry and action stay.
func aclLogPrefix(k ACLSetKey, e *ACLEntry) string {
	tail := fmt.Sprintf(" %s %d %s: ", k.Type, e.Seq, e.Action)
	name := k.Name
	if n := 127 - len("switchd acl ") - len(tail); len(name) > n {
		name = name[:n]
	}
	return "switchd acl " + name + tail
}

func aclMetaEq(k expr.MetaKey, v []byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: k, Register: aclReg}, aclEq(v)}
}

func aclNetLoad(off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: aclReg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

func aclMask(n uint32, m []byte) *expr.Bitwise {
	return &expr.Bitwise{SourceRegister: aclReg, DestRegister: aclReg, Len: n, Mask: m, Xor: make([]byte, n)}
}

func aclEq(v []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: aclReg, Data: v} }

func aclBE16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func aclPrefixMask(p netip.Prefix) []byte {
	m := make([]byte, p.Addr().BitLen()/8)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// definedSets makes the named sets of the defined sets entries use.
func (c *aclCompiler) definedSets(d *DefinedSets) []ACLTableSet {
	var out []ACLTableSet
	add := func(name string, kt nftables.SetDatatype, es []Element) {
		if !c.used[name] {
			return
		}
		out = append(out, ACLTableSet{Set: Set{Name: name, KeyType: kt, Interval: true}, Elements: aclMergeRanges(es)})
	}
	for _, fam := range []struct {
		t    ACLType
		sets []PrefixSet
		kt   nftables.SetDatatype
	}{{ACLIPv4, d.IPv4, nftables.TypeIPAddr}, {ACLIPv6, d.IPv6, nftables.TypeIP6Addr}} {
		for _, s := range fam.sets {
			var es []Element
			for _, p := range s.Prefixes {
				es = append(es, Prefix(p))
			}
			add(aclPrefixSetName(fam.t, s.Name), fam.kt, es)
		}
	}
	for _, s := range d.Ports {
		var es []Element
		for _, r := range s.Ranges {
			es = append(es, Element{Key: aclBE16(r.First), KeyEnd: aclBE16(r.Last)})
		}
		add(aclPortSetName(s.Name), nftables.TypeInetService, es)
	}
	return out
}

// aclMergeRanges sorts ranges and joins those that overlap or touch: an
// interval set refuses overlapping elements.
func aclMergeRanges(es []Element) []Element {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b Element) int { return bytes.Compare(a.Key, b.Key) })
	var out []Element
	for _, e := range es {
		if n := len(out); n > 0 {
			last := &out[n-1]
			next, ok := aclPlusOne(last.KeyEnd)
			if !ok {
				continue // last reaches the end of the key space
			}
			if bytes.Compare(e.Key, next) <= 0 {
				if bytes.Compare(e.KeyEnd, last.KeyEnd) > 0 {
					last.KeyEnd = e.KeyEnd
				}
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// aclPlusOne is b+1 as a big-endian number; ok is false if b is all ones.
func aclPlusOne(b []byte) ([]byte, bool) {
	b = slices.Clone(b)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return b, true
		}
	}
	return nil, false
}

// SetACL replaces the OpenConfig ACLs: in compiled (CompileACL) into the
// ACL slots, what the previous ACLs had and these lack deleted. Only
// Apply writes the kernel.
func (e *Engine) SetACL(in ACLIntent) error {
	a := CompileACL(&in)
	sets := make([]staticSet, len(a.Sets))
	for i, s := range a.Sets {
		sets[i] = staticSet{def: s.Set, elements: s.Elements}
	}
	return e.setSlot("acl", a.Chains, sets)
}

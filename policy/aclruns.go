package policy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Runs: a large ACL at a few lookups per packet.
//
// A run is a stretch of consecutive entries of an ACL set (in sequence
// order) that one rule stands for: the same action (a REJECT also the same
// kind of answer), none logged (a log prefix names its entry), the same
// family and the same match shape — which of source prefix, destination
// prefix, protocol, source port and destination port each matches, and
// nothing else (no defined sets, DSCP, hop limit or TCP flags) — and no
// two of them overlapping (every field's ranges intersecting, so some
// packet matches both). The rule loads those fields into consecutive
// registers and looks them up in a set holding one element per entry: a
// hash set when every entry of the run is one value per field (hosts,
// single ports: one hash lookup, as anti-spoofing's), else an interval
// set, rbtree for one field, concatenated (pipapo) for several. Runs
// shorter than aclRunMin stay a rule per entry.
//
// Why it is exact: no packet matches two entries of a run, so the element
// a packet matches, if any, is the one entry of the run it matches, which
// is its first match there, and all entries of the run do the same. So the
// verdict is the sequential one, and the element's counter counts what
// the entry's own rule would have: the set has a counter per element, and
// each element's ID (its comment in the kernel) is the entry's ACLRuleID,
// which Table.Counters reports and ACLCounters sums like a rule's. An
// entry that overlaps one before it in the run ends the run (a packet
// matching both must count on the first), and starts the next.
//
// Changes: the set is named after the chain, the run's first sequence id,
// its action and shape (aclRunSetName), and the rule refers to it by that
// name, so adding or removing an entry that keeps the run (not its first)
// changes elements only; the other entries keep their elements and
// counters. An entry whose match or sequence id changes is a new element,
// as it would be a new rule.
const aclRunMin = 4

// aclRunMaxName bounds the set name and the element comment (the kernel
// takes 255 bytes of name and 256 of element userdata): a chain whose
// names would be longer keeps a rule per entry.
const aclRunMaxName = 240

// aclRunField is a field of a run's match, in key order.
type aclRunField uint8

const (
	aclRunSrc aclRunField = 1 << iota
	aclRunDst
	aclRunProto
	aclRunSport
	aclRunDport
	aclRunFields = 5
)

var aclRunFieldNames = [aclRunFields]string{"saddr", "daddr", "l4proto", "sport", "dport"}

// aclRunShape is what the entries of a run share.
type aclRunShape struct {
	family    ACLType // 0: a mixed entry without addresses, both families
	fields    aclRunField
	action    ACLAction
	rejectTCP bool
}

// aclRunBox is an entry's match as one range per field of its shape, in
// key order.
type aclRunBox [][2][]byte

// aclRunShapeOf is e's shape and match, ok false if e must stay a rule of
// its own.
func aclRunShapeOf(e *ACLEntry) (aclRunShape, aclRunBox, bool) {
	s := aclRunShape{family: e.Family, action: e.Action, rejectTCP: e.Action == ACLReject && e.Protocol == ProtoTCP}
	if e.Log || len(e.DSCP) > 0 || e.HopLimit != nil || e.TCPFlags != nil || e.Src.Set != "" || e.Dst.Set != "" ||
		e.SrcPorts.Set != "" || e.DstPorts.Set != "" || len(e.SrcPorts.Ranges) > 1 || len(e.DstPorts.Ranges) > 1 {
		return s, nil, false
	}
	var box aclRunBox
	addr := func(m AddrMatch, f aclRunField) bool {
		// As entryExprs: a /0 matches any address of the family.
		if !m.Prefix.IsValid() || m.Prefix.Bits() == 0 {
			return true
		}
		if e.Family != ACLIPv4 && e.Family != ACLIPv6 || m.Prefix.Addr().Is4() != (e.Family == ACLIPv4) {
			return false
		}
		p := Prefix(m.Prefix)
		s.fields |= f
		box = append(box, [2][]byte{p.Key, p.KeyEnd})
		return true
	}
	if !addr(e.Src, aclRunSrc) || !addr(e.Dst, aclRunDst) {
		return s, nil, false
	}
	if e.Protocol != 0 {
		s.fields |= aclRunProto
		box = append(box, [2][]byte{{e.Protocol}, {e.Protocol}})
	}
	for _, p := range []struct {
		m PortMatch
		f aclRunField
	}{{e.SrcPorts, aclRunSport}, {e.DstPorts, aclRunDport}} {
		if len(p.m.Ranges) == 1 {
			s.fields |= p.f
			box = append(box, [2][]byte{aclBE16(p.m.Ranges[0].First), aclBE16(p.m.Ranges[0].Last)})
		}
	}
	// An entry that matches everything would overlap any other.
	return s, box, s.fields != 0
}

// overlaps reports whether some packet falls in both boxes (of one shape).
func (b aclRunBox) overlaps(o aclRunBox) bool {
	for i := range b {
		if bytes.Compare(b[i][0], o[i][1]) > 0 || bytes.Compare(o[i][0], b[i][1]) > 0 {
			return false
		}
	}
	return true
}

// element is the box as a set element: for one field its range, for
// several the concatenation of the starts and of the ends; in a set
// without intervals, the key alone.
func (b aclRunBox) element(id string, interval bool) Element {
	var lo, hi [][]byte
	for _, r := range b {
		lo, hi = append(lo, r[0]), append(hi, r[1])
	}
	e := Element{Key: Concat(lo...), KeyEnd: Concat(hi...), ID: id}
	if len(b) == 1 {
		e.Key, e.KeyEnd = b[0][0], b[0][1]
	}
	if !interval {
		e.KeyEnd = nil
	}
	return e
}

// exact reports whether the box is one value in every field.
func (b aclRunBox) exact() bool {
	for _, r := range b {
		if !bytes.Equal(r[0], r[1]) {
			return false
		}
	}
	return true
}

// String names the shape in set names: action, family, fields.
func (s aclRunShape) String() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(s.action.String()))
	if s.rejectTCP {
		b.WriteString("-tcp")
	}
	b.WriteString(map[ACLType]string{0: "-inet", ACLIPv4: "-ip", ACLIPv6: "-ip6"}[s.family])
	for i, n := range aclRunFieldNames {
		if s.fields&(1<<i) != 0 {
			b.WriteString("-" + n)
		}
	}
	return b.String()
}

// loads are the key types of the shape's fields and the expressions that
// load them into consecutive registers, as a concatenated key is laid out.
func (s aclRunShape) loads() ([]nftables.SetDatatype, []expr.Any) {
	v6 := s.family == ACLIPv6
	addrType, addrLen := nftables.TypeIPAddr, uint32(4)
	if v6 {
		addrType, addrLen = nftables.TypeIP6Addr, 16
	}
	reg := uint32(unix.NFT_REG32_00)
	var types []nftables.SetDatatype
	var x []expr.Any
	for i := range aclRunFields {
		f := aclRunField(1 << i)
		if s.fields&f == 0 {
			continue
		}
		var t nftables.SetDatatype
		switch f {
		case aclRunSrc, aclRunDst:
			off := uint32(aclIP4Saddr)
			switch {
			case v6 && f == aclRunSrc:
				off = aclIP6Saddr
			case v6:
				off = aclIP6Daddr
			case f == aclRunDst:
				off = aclIP4Daddr
			}
			t = addrType
			x = append(x, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: addrLen})
		case aclRunProto:
			t = nftables.TypeInetProto
			x = append(x, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg})
		case aclRunSport, aclRunDport:
			off := uint32(aclSport)
			if f == aclRunDport {
				off = aclDport
			}
			t = nftables.TypeInetService
			x = append(x, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
		}
		types = append(types, t)
		reg += (t.Bytes + 3) / 4 // a field takes whole 32-bit registers
	}
	return types, x
}

// set is the definition of a run set of this shape.
func (s aclRunShape) set(name string, interval bool) Set {
	types, _ := s.loads()
	kt := types[0]
	if len(types) > 1 {
		kt = nftables.MustConcatSetType(types...)
	}
	return Set{Name: name, KeyType: kt, Interval: interval, Counter: true}
}

// aclRunSetName names the set of the run of chain that starts at seq;
// a hash set's name says so (a run that changes kind is another set).
func aclRunSetName(chain string, seq uint32, s aclRunShape, interval bool) string {
	if !interval {
		return fmt.Sprintf("%s.%d.%s.exact", chain, seq, s)
	}
	return fmt.Sprintf("%s.%d.%s", chain, seq, s)
}

// aclRunRuleID is the ID of a run's rule: not an entry's (ParseACLRuleID
// refuses it; the elements count for the entries).
func aclRunRuleID(dir string, k ACLSetKey, seq uint32) string {
	return fmt.Sprintf("aclrun %s %s %d %s", dir, k.Type, seq, k.Name)
}

// entriesRules compiles the entries (by sequence id) of set k in chain
// chain: runs of at least aclRunMin entries become a rule and a set (added
// to c.runSets), the others a rule each (entryRules).
func (c *aclCompiler) entriesRules(dir, chain string, k ACLSetKey, entries []ACLEntry) []ChainRule {
	var out []ChainRule
	single := func(es []ACLEntry) {
		for i := range es {
			out = append(out, c.entryRules(dir, k, &es[i])...)
		}
	}
	longID := ACLRuleID{Set: k, Seq: 4294967295}.String()
	if len(aclRunSetName(chain, 4294967295, aclRunShape{fields: 1<<aclRunFields - 1, action: ACLReject, rejectTCP: true}, false)) > aclRunMaxName ||
		len(longID) > aclRunMaxName {
		single(entries)
		return out
	}
	type shaped struct {
		shape aclRunShape
		box   aclRunBox
		ok    bool
	}
	sh := make([]shaped, len(entries))
	for i := range entries {
		sh[i].shape, sh[i].box, sh[i].ok = aclRunShapeOf(&entries[i])
	}
	for i := 0; i < len(entries); {
		if !sh[i].ok {
			single(entries[i : i+1])
			i++
			continue
		}
		// The stretch of entries of this shape, of which the run takes
		// those before the first overlap.
		end := i + 1
		for end < len(entries) && sh[end].ok && sh[end].shape == sh[i].shape {
			end++
		}
		var stretch []aclRunBox
		for _, x := range sh[i:end] {
			stretch = append(stretch, x.box)
		}
		idx := newACLRunIndex(stretch)
		j := i
		for ; j < end && !idx.overlaps(sh[j].box); j++ {
			idx.add(sh[j].box)
		}
		if j-i < aclRunMin {
			single(entries[i:j])
			i = j
			continue
		}
		shape := sh[i].shape
		interval := slices.ContainsFunc(sh[i:j], func(x shaped) bool { return !x.box.exact() })
		name := aclRunSetName(chain, entries[i].Seq, shape, interval)
		ts := ACLTableSet{Set: shape.set(name, interval)}
		for n := i; n < j; n++ {
			id := ACLRuleID{Set: k, Seq: entries[n].Seq, Ingress: dir == "in"}
			ts.Elements = append(ts.Elements, sh[n].box.element(id.String(), interval))
		}
		c.runSets = append(c.runSets, ts)
		out = append(out, ChainRule{ID: aclRunRuleID(dir, k, entries[i].Seq), Exprs: shape.exprs(&entries[i], name)})
		i = j
	}
	return out
}

// aclRunIndex finds, among the boxes of a run, one that overlaps a new
// box without trying them all (a run of n entries would cost n²/2 box
// comparisons: ~1 s at 10,000). It keeps the boxes sorted by the start
// of one field, the one where the stretch's entries differ most, with
// the highest end so far beside each: only boxes that start before the
// new one ends and, going back, while some box reaches its start, can
// overlap it. For distinct hosts or ports that is a binary search and a
// box or two.
type aclRunIndex struct {
	f     int
	boxes []aclRunBox // by start of field f
	maxHi [][]byte    // maxHi[i]: the highest end of field f in boxes[:i+1]
}

func newACLRunIndex(stretch []aclRunBox) *aclRunIndex {
	x := &aclRunIndex{}
	best := 0
	for f := range stretch[0] {
		seen := map[string]bool{}
		for _, b := range stretch {
			seen[string(b[f][0])] = true
		}
		if len(seen) > best {
			x.f, best = f, len(seen)
		}
	}
	return x
}

// upTo is the number of boxes whose field f starts at or before v.
func (x *aclRunIndex) upTo(v []byte) int {
	n, _ := slices.BinarySearchFunc(x.boxes, v, func(b aclRunBox, v []byte) int {
		if bytes.Compare(b[x.f][0], v) <= 0 {
			return -1
		}
		return 1
	})
	return n
}

func (x *aclRunIndex) overlaps(b aclRunBox) bool {
	lo, hi := b[x.f][0], b[x.f][1]
	for i := x.upTo(hi) - 1; i >= 0 && bytes.Compare(x.maxHi[i], lo) >= 0; i-- {
		if x.boxes[i].overlaps(b) {
			return true
		}
	}
	return false
}

func (x *aclRunIndex) add(b aclRunBox) {
	k := x.upTo(b[x.f][0])
	x.boxes = slices.Insert(x.boxes, k, b)
	x.maxHi = slices.Insert(x.maxHi, k, nil)
	for i := k; i < len(x.boxes); i++ {
		m := x.boxes[i][x.f][1]
		if i > 0 && bytes.Compare(x.maxHi[i-1], m) > 0 {
			m = x.maxHi[i-1]
		}
		if i > k && bytes.Equal(x.maxHi[i], m) {
			break // unchanged from here on
		}
		x.maxHi[i] = m
	}
}

// exprs is the run's rule: the family, the fields into registers, the
// lookup, the action of its entries (first is one of them).
func (s aclRunShape) exprs(first *ACLEntry, set string) []expr.Any {
	var x []expr.Any
	switch s.family {
	case ACLIPv4:
		x = append(x, aclMetaEq(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV4})...)
	case ACLIPv6:
		x = append(x, aclMetaEq(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV6})...)
	}
	_, loads := s.loads()
	x = append(x, loads...)
	x = append(x, &expr.Lookup{SourceRegister: unix.NFT_REG32_00, SetName: set})
	return append(x, aclVerdict(first)...)
}

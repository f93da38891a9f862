package policy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Set is a named set or verdict map of the table. Its elements are data:
// AddElements and DeleteElements change them without touching any rule.
type Set struct {
	Name string
	// KeyType is the element type; nftables.MustConcatSetType makes
	// concatenations such as iifname . ipv4_addr.
	KeyType nftables.SetDatatype
	// Interval makes elements ranges (prefixes): Element.KeyEnd is set.
	Interval bool
	// Constant sets cannot change after creation; give all elements before
	// the first Apply that creates the set.
	Constant bool
	// Verdict makes a verdict map: each element jumps to Element.Jump
	// (or goes to it, Element.Goto).
	Verdict bool
	// Counter gives each element a counter, which Table.Counters reads
	// under the element's ID.
	Counter bool
}

// Element is a member of a Set. Keys are in the set's byte layout
// (network order for addresses and ports, see Concat, IfName, Prefix).
type Element struct {
	Key []byte
	// KeyEnd is the last key of the range for Interval sets (inclusive);
	// nil means Key alone.
	KeyEnd []byte
	// Jump is the chain a verdict map element jumps to.
	Jump string
	// Goto makes the element a goto to Jump: a return from that chain
	// goes back past the map's rule, to the chain that jumped to the
	// map's chain (a dispatch chain whose last rule is for misses).
	Goto bool
	// ID names the element for the caller (an ACL entry): kept in the
	// kernel as the element's comment; an element whose ID changes is
	// deleted and added again, so its counter starts anew.
	ID string
}

// sameData reports whether e and o, of the same key, need no rewrite.
func (e Element) sameData(o Element) bool {
	return e.Jump == o.Jump && e.Goto == o.Goto && e.ID == o.ID
}

// IfName is an interface name as an nftables ifname key (16 bytes).
func IfName(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

// Concat joins the fields of a concatenated key; each field is padded to 4
// bytes, as the kernel lays them out.
func Concat(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

// Prefix is an element of an Interval set of addresses: the range p covers.
func Prefix(p netip.Prefix) Element {
	p = p.Masked()
	first := p.Addr().AsSlice()
	last := slices.Clone(first)
	bits := p.Bits()
	for i := range last {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				last[i] |= 0x80 >> b
			}
		}
	}
	return Element{Key: first, KeyEnd: last}
}

// setState is one set: its desired definition and elements, and what the
// kernel holds.
type setState struct {
	def    Set
	wanted bool // in the desired state
	create bool // the kernel has no such set (or one with another definition)

	want map[string]Element
	have map[string]Element // kernel view; nil when the kernel has no set
	// dirty are the element keys where want and have may differ.
	dirtyKeys map[string]struct{}
}

func (s *setState) dirty() bool {
	return len(s.dirtyKeys) > 0 || s.create || !s.wanted
}

func (s *setState) norm(e Element) (string, Element, error) {
	n := int(s.def.KeyType.Bytes)
	if len(e.Key) != n {
		return "", e, fmt.Errorf("key is %d bytes, the set's type %s has %d", len(e.Key), s.def.KeyType.Name, n)
	}
	if s.def.Interval {
		if e.KeyEnd == nil {
			e.KeyEnd = e.Key
		}
		if len(e.KeyEnd) != n || bytes.Compare(e.KeyEnd, e.Key) < 0 {
			return "", e, fmt.Errorf("range end %x does not fit start %x", e.KeyEnd, e.Key)
		}
	} else if e.KeyEnd != nil {
		return "", e, fmt.Errorf("range %x-%x in a set without the interval flag", e.Key, e.KeyEnd)
	}
	if s.def.Verdict != (e.Jump != "") {
		return "", e, fmt.Errorf("element %x: a jump is what verdict map elements have and only they", e.Key)
	}
	return string(e.Key) + string(e.KeyEnd), e, nil
}

// SetSet sets the definition of set s, keeping its elements. A changed
// definition re-creates the set with them.
func (t *Table) SetSet(s Set) error {
	if s.Name == "" || s.KeyType.Bytes == 0 {
		return fmt.Errorf("set set %q: needs a name and a key type", s.Name)
	}
	st := t.sets[s.Name]
	if st == nil {
		st = &setState{want: map[string]Element{}, dirtyKeys: map[string]struct{}{}, create: true}
		t.sets[s.Name] = st
	}
	if !st.wanted {
		st.want = map[string]Element{}
	}
	if st.def != s && len(st.want) > 0 {
		// Keep the elements in the new layout; another key type or map
		// kind makes them meaningless.
		n := &setState{def: s}
		want := map[string]Element{}
		if s.KeyType == st.def.KeyType && s.Verdict == st.def.Verdict {
			for _, e := range st.want {
				if !s.Interval && bytes.Equal(e.Key, e.KeyEnd) {
					e.KeyEnd = nil
				}
				k, e, err := n.norm(e)
				if err != nil {
					return fmt.Errorf("set set %s: element no longer fits: %w", s.Name, err)
				}
				want[k] = e
			}
		}
		st.want = want
	}
	if st.def != s && st.have != nil {
		st.create = true
	}
	st.def, st.wanted = s, true
	return nil
}

// DeleteSet removes set name, with its elements, from the desired state.
func (t *Table) DeleteSet(name string) {
	if st := t.sets[name]; st != nil {
		st.wanted = false
		st.want = map[string]Element{}
	}
}

// AddElements adds elements to set name (desired state only).
func (t *Table) AddElements(name string, es ...Element) error {
	st := t.sets[name]
	if st == nil || !st.wanted {
		return fmt.Errorf("add elements to set %s: no such set", name)
	}
	for _, e := range es {
		k, e, err := st.norm(e)
		if err != nil {
			return fmt.Errorf("add element to set %s: %w", name, err)
		}
		if h, ok := st.have[k]; !ok || !h.sameData(e) {
			st.constantChanged()
		}
		st.want[k] = e
		st.dirtyKeys[k] = struct{}{}
	}
	return nil
}

// DeleteElements removes elements from set name (desired state only); for
// a verdict map the key alone names the element.
func (t *Table) DeleteElements(name string, es ...Element) error {
	st := t.sets[name]
	if st == nil || !st.wanted {
		return fmt.Errorf("delete elements from set %s: no such set", name)
	}
	for _, e := range es {
		if st.def.Verdict && e.Jump == "" {
			e.Jump = "-"
		}
		k, _, err := st.norm(e)
		if err != nil {
			return fmt.Errorf("delete element from set %s: %w", name, err)
		}
		if _, ok := st.have[k]; ok {
			st.constantChanged()
		}
		delete(st.want, k)
		st.dirtyKeys[k] = struct{}{}
	}
	return nil
}

// constantChanged re-creates a constant set whose elements change: the
// kernel refuses element changes once rules refer to it.
func (s *setState) constantChanged() {
	if s.def.Constant && s.have != nil {
		s.create = true
	}
}

// nftSet is the google/nftables form of the definition.
func (s *Set) nftSet(tbl *nftables.Table) *nftables.Set {
	ns := &nftables.Set{
		Table:         tbl,
		Name:          s.Name,
		KeyType:       s.KeyType,
		Interval:      s.Interval,
		Constant:      s.Constant,
		Counter:       s.Counter,
		Concatenation: len(nftables.ConcatSetTypeElements(s.KeyType)) > 1,
	}
	if s.KeyType.Name == nftables.TypeIFName.Name {
		// nft keeps interface names in host order; without saying so in
		// the userdata, `nft list` prints such a map's keys as "".
		ns.KeyByteOrder = binaryutil.NativeEndian
	}
	if s.Verdict {
		ns.IsMap = true
		ns.DataType = nftables.TypeVerdict
	}
	return ns
}

// sameDef compares a definition with what GetSets reports: flags and key
// length, never a map's key type (v0.3.0 reports it as verdict).
func sameDef(s *Set, k *nftables.Set) bool {
	want := s.nftSet(nil)
	if k.Interval != want.Interval || k.Constant != want.Constant || k.IsMap != want.IsMap ||
		k.Concatenation != want.Concatenation {
		return false
	}
	return want.IsMap || k.KeyType.Bytes == want.KeyType.Bytes
}

// nftElements encodes e as the kernel wants it: an rbtree interval (no
// concatenation) is a start element and an end element one past the range
// (none if the range reaches the end of the key space); a concatenated
// interval carries its inclusive end as KeyEnd.
func (s *Set) nftElements(dst []nftables.SetElement, e Element) []nftables.SetElement {
	ne := nftables.SetElement{Key: e.Key, Comment: e.ID}
	if s.Verdict {
		kind := expr.VerdictJump
		if e.Goto {
			kind = expr.VerdictGoto
		}
		ne.VerdictData = &expr.Verdict{Kind: kind, Chain: e.Jump}
	}
	if !s.Interval {
		return append(dst, ne)
	}
	if len(nftables.ConcatSetTypeElements(s.KeyType)) > 1 {
		ne.KeyEnd = e.KeyEnd
		return append(dst, ne)
	}
	dst = append(dst, ne)
	end := slices.Clone(e.KeyEnd)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return append(dst, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	return dst
}

// fromKernel turns the elements a dump returned back into Elements.
func (s *setState) fromKernel(kes []nftables.SetElement) (map[string]Element, error) {
	have := make(map[string]Element, len(kes))
	add := func(e Element) error {
		k, e, err := s.norm(e)
		if err != nil {
			return err
		}
		have[k] = e
		return nil
	}
	concat := len(nftables.ConcatSetTypeElements(s.def.KeyType)) > 1
	if !s.def.Interval || concat {
		for _, ke := range kes {
			e := Element{Key: ke.Key, ID: ke.Comment}
			if s.def.Interval {
				e.KeyEnd = ke.KeyEnd
			}
			if s.def.Verdict {
				e.Jump, e.Goto = verdictOf(ke.Val)
			}
			if err := add(e); err != nil {
				return nil, err
			}
		}
		return have, nil
	}
	// An rbtree dump lists starts and ends in some order; sorted, an end
	// sorts before a start of the same key and follows its start.
	slices.SortFunc(kes, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd && !b.IntervalEnd:
			return -1
		case !a.IntervalEnd && b.IntervalEnd:
			return 1
		}
		return 0
	})
	for i := 0; i < len(kes); i++ {
		if kes[i].IntervalEnd {
			continue // an end without a start: the kernel's own marker
		}
		e := Element{Key: kes[i].Key, ID: kes[i].Comment}
		if s.def.Verdict {
			e.Jump, e.Goto = verdictOf(kes[i].Val)
		}
		if i+1 < len(kes) && kes[i+1].IntervalEnd {
			e.KeyEnd = minusOne(kes[i+1].Key)
			i++
		} else {
			e.KeyEnd = bytes.Repeat([]byte{0xff}, len(e.Key))
		}
		if err := add(e); err != nil {
			return nil, err
		}
	}
	return have, nil
}

func minusOne(b []byte) []byte {
	b = slices.Clone(b)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]--
		if b[i] != 0xff {
			break
		}
	}
	return b
}

// verdictOf decodes the chain of a verdict as a dump returns it (the
// nested NFTA_VERDICT_* attributes) and whether it is a goto; "?" if it
// is neither jump nor goto, so it differs from any desired element and
// gets rewritten.
func verdictOf(val []byte) (chain string, isGoto bool) {
	ad, err := netlink.NewAttributeDecoder(val)
	if err != nil {
		return "?", false
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = int32(ad.Uint32())
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if ad.Err() != nil || code != unix.NFT_JUMP && code != unix.NFT_GOTO || chain == "" {
		return "?", false
	}
	return chain, code == unix.NFT_GOTO
}

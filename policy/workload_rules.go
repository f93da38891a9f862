package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Expressions and sets the workload compiler emits. Every address match
// is a lookup in a named set, so a rule never names a workload address:
// membership stays data.

// shortHash names objects after their content: 16 hex digits of SHA-256.
func shortHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

// family is an address family a rule is compiled for; 0 is both (the rule
// matches no address).
type family uint8

const (
	famAny family = 0
	fam4   family = 4
	fam6   family = 6
)

func (f family) String() string {
	switch f {
	case fam4:
		return "ip"
	case fam6:
		return "ip6"
	}
	return "inet"
}

func famOf(a netip.Addr) family {
	if a.Unmap().Is4() {
		return fam4
	}
	return fam6
}

func (f family) keyType() nftables.SetDatatype {
	if f == fam4 {
		return nftables.TypeIPAddr
	}
	return nftables.TypeIP6Addr
}

func (f family) nfproto() byte {
	if f == fam4 {
		return unix.NFPROTO_IPV4
	}
	return unix.NFPROTO_IPV6
}

// addrKey is an address as a set key of its family.
func addrKey(a netip.Addr) []byte {
	return a.Unmap().AsSlice()
}

// selectorSetName is the set of the addresses of family f of the endpoints
// selector s matches; the name depends on the canonical form only, so any
// source of members (BGP, later) can find it.
func selectorSetName(f family, s string) string {
	return fmt.Sprintf("sel%d-%s", f, shortHash(s))
}

func matchNFProto(f family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto()}},
	}
}

// addrLookup matches the source (src) or destination address of family f
// against set.
func addrLookup(f family, src bool, set string) []expr.Any {
	off, n := uint32(16), uint32(4)
	if f == fam6 {
		off, n = 24, 16
	}
	if src {
		off -= n
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: set},
	}
}

// ctEstablished is `ct state established,related accept`: first in each
// workload slot, so a packet of an established flow costs one lookup.
func ctEstablished() ChainRule {
	return ChainRule{ID: "ct established,related", Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
			Xor:  make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}}
}

// ndpAccept accepts the ICMPv6 that neighbour discovery needs (router and
// neighbour solicitations and advertisements, types 133-136) from a
// workload to the host: an endpoint whose egress policy denies the host
// must still resolve its gateway.
func ndpAccept() ChainRule {
	return ChainRule{ID: "ndp", Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{ProtoICMPv6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{133}, ToData: []byte{136}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}}
}

// vmapRule is `iifname vmap @m` (or oifname).
func vmapRule(m string, iif bool) ChainRule {
	k := expr.MetaKeyOIFNAME
	if iif {
		k = expr.MetaKeyIIFNAME
	}
	return ChainRule{ID: "vmap " + m, Exprs: []expr.Any{
		&expr.Meta{Key: k, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: m, IsDestRegSet: true, DestRegister: 0},
	}}
}

// dropRule is `counter drop`, the end of a chain that denies by default.
func dropRule(id string) ChainRule {
	return ChainRule{ID: id, Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}}
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ first, last netip.Addr }

func prefixRange(p netip.Prefix) addrRange {
	e := Prefix(p)
	last, _ := netip.AddrFromSlice(e.KeyEnd)
	return addrRange{p.Masked().Addr(), last}
}

// cidrRanges is the union of cidrs minus the union of excepts, of family
// f, as sorted ranges that neither overlap nor touch (an interval set
// refuses both).
func cidrRanges(f family, cidrs, excepts []netip.Prefix) []addrRange {
	merge := func(ps []netip.Prefix) []addrRange {
		var rs []addrRange
		for _, p := range ps {
			if p.Addr().Is4() == (f == fam4) {
				rs = append(rs, prefixRange(p))
			}
		}
		slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
		var out []addrRange
		for _, r := range rs {
			if n := len(out); n > 0 && (!out[n-1].last.Next().IsValid() || r.first.Compare(out[n-1].last.Next()) <= 0) {
				if r.last.Compare(out[n-1].last) > 0 {
					out[n-1].last = r.last
				}
				continue
			}
			out = append(out, r)
		}
		return out
	}
	rs, ex := merge(cidrs), merge(excepts)
	for _, x := range ex {
		var next []addrRange
		for _, r := range rs {
			if x.last.Less(r.first) || r.last.Less(x.first) {
				next = append(next, r)
				continue
			}
			if r.first.Less(x.first) {
				next = append(next, addrRange{r.first, x.first.Prev()})
			}
			if x.last.Less(r.last) {
				next = append(next, addrRange{x.last.Next(), r.last})
			}
		}
		rs = next
	}
	return rs
}

// portElements are the port ranges as interval set elements, merged so
// none overlap or touch.
func portElements(prs []PortRange) []Element {
	rs := slices.Clone(prs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.First) - int(b.First) })
	var m []PortRange
	for _, r := range rs {
		if n := len(m); n > 0 && (m[n-1].Last == 0xffff || r.First <= m[n-1].Last+1) {
			m[n-1].Last = max(m[n-1].Last, r.Last)
			continue
		}
		m = append(m, r)
	}
	es := make([]Element, len(m))
	for i, r := range m {
		es[i] = Element{Key: binary.BigEndian.AppendUint16(nil, r.First), KeyEnd: binary.BigEndian.AppendUint16(nil, r.Last)}
	}
	return es
}

// staticSet is a set whose elements follow from the intent alone (CIDRs,
// port lists): named after its content, so a name never changes members.
type staticSet struct {
	def      Set
	elements []Element
}

// ruleCompiler turns the rules of one direction of one policy into chain
// rules, and collects the sets they refer to.
type ruleCompiler struct {
	sets      map[string]staticSet // CIDR and port sets, by name
	selectors map[string]Selector  // peer selectors, by canonical form
}

// compile appends the chain rules of rule r of policy p in direction dir
// ("ingress": the peer is the source; "egress": the destination). Allow
// returns from the profile chain (the other side's checks still follow in
// the forward hook), Deny drops, Log logs and goes on.
func (rc *ruleCompiler) compile(out []ChainRule, p *Policy, dir string, r *Rule) []ChainRule {
	fams := []family{fam4, fam6}
	switch r.Protocol {
	case ProtoICMP:
		fams = []family{fam4}
	case ProtoICMPv6:
		fams = []family{fam6}
	}
	peer := r.Peer
	if peer.Selector == nil && len(peer.CIDRs) == 0 {
		if r.Protocol != ProtoICMP && r.Protocol != ProtoICMPv6 {
			fams = []family{famAny}
		}
	}
	src := dir == "ingress"
	for _, f := range fams {
		var es []expr.Any
		if f != famAny {
			es = append(es, matchNFProto(f)...)
		}
		if len(peer.CIDRs) > 0 {
			rs := cidrRanges(f, peer.CIDRs, peer.Except)
			if len(rs) == 0 {
				continue // no address of this family can match
			}
			var parts []string
			elems := make([]Element, len(rs))
			for i, x := range rs {
				parts = append(parts, x.first.String()+"-"+x.last.String())
				elems[i] = Element{Key: addrKey(x.first), KeyEnd: addrKey(x.last)}
			}
			name := fmt.Sprintf("net%d-%s", f, shortHash(parts...))
			rc.sets[name] = staticSet{Set{Name: name, KeyType: f.keyType(), Interval: true}, elems}
			es = append(es, addrLookup(f, src, name)...)
		}
		// A peer selector matches its endpoints' addresses (a hash set) or
		// its network sets' prefixes (an interval set): one rule each.
		type variant struct {
			id   string
			look []expr.Any
		}
		vs := []variant{{id: fmt.Sprintf("%s/%s/%d/%s", p.Name, dir, r.Seq, f)}}
		if peer.Selector != nil {
			s := peer.Selector.String()
			rc.selectors[s] = *peer.Selector
			vs = []variant{
				{vs[0].id, addrLookup(f, src, selectorSetName(f, s))},
				{vs[0].id + "/net", addrLookup(f, src, selectorNetSetName(f, s))},
			}
		}
		for _, v := range vs {
			out = append(out, ChainRule{ID: v.id, Exprs: rc.ruleTail(slices.Concat(es, v.look), p, dir, r)})
		}
	}
	return out
}

// ruleTail appends to es the protocol, port, counter and verdict of rule
// r of policy p in direction dir.
func (rc *ruleCompiler) ruleTail(es []expr.Any, p *Policy, dir string, r *Rule) []expr.Any {
	if r.Protocol != 0 {
		es = append(es, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.Protocol}})
	}
	es = append(es, rc.ports(r.SrcPorts, 0)...)
	es = append(es, rc.ports(r.DstPorts, 2)...)
	es = append(es, &expr.Counter{})
	switch r.Action {
	case Allow:
		es = append(es, &expr.Verdict{Kind: expr.VerdictReturn})
	case Deny:
		es = append(es, &expr.Verdict{Kind: expr.VerdictDrop})
	case Log:
		prefix := fmt.Sprintf("swd %s/%s/%d: ", p.Name, dir, r.Seq)
		if len(prefix) > 127 { // the kernel's limit (NF_LOG_PREFIXLEN, with its NUL)
			prefix = prefix[:127]
		}
		es = append(es, &expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(prefix)})
	}
	return es
}

// ports matches the transport port at off (0 source, 2 destination): one
// range by comparison, several by lookup in an interval set.
func (rc *ruleCompiler) ports(prs []PortRange, off uint32) []expr.Any {
	if len(prs) == 0 {
		return nil
	}
	es := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}}
	if len(prs) == 1 {
		from := binary.BigEndian.AppendUint16(nil, prs[0].First)
		if prs[0].First == prs[0].Last {
			return append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: from})
		}
		return append(es, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: from,
			ToData: binary.BigEndian.AppendUint16(nil, prs[0].Last)})
	}
	elems := portElements(prs)
	var parts []string
	for _, e := range elems {
		parts = append(parts, fmt.Sprintf("%x-%x", e.Key, e.KeyEnd))
	}
	name := "port-" + shortHash(parts...)
	rc.sets[name] = staticSet{Set{Name: name, KeyType: nftables.TypeInetService, Interval: true}, elems}
	return append(es, &expr.Lookup{SourceRegister: 1, SetName: name})
}

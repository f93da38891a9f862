package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
)

var (
	aclPath = path{{name: "acl"}}
	dsPath  = path{{name: "defined-sets"}}
)

// acl translates /acl (ACL sets and their bindings to interfaces) and
// the /defined-sets its entries name into in.ACL.
func (t *translator) acl(dev *oc.Device, in *Intent) {
	defined := t.definedSets(dev.DefinedSets)
	in.ACL.Defined = defined.out
	if dev.Acl == nil {
		return
	}
	sets := map[policy.ACLSetKey]bool{}
	keys := make([]oc.Acl_AclSet_Key, 0, len(dev.Acl.AclSet))
	for k := range dev.Acl.AclSet {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b oc.Acl_AclSet_Key) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Type, b.Type))
	})
	for _, k := range keys {
		p := aclPath.child("acl-sets").entry("acl-set", []kv{{"name", k.Name}, {"type", enumName(k.Type)}})
		set, ok := t.aclSet(dev.Acl.AclSet[k], k, p, defined)
		if !ok {
			continue
		}
		sets[set.Key()] = true
		in.ACL.Sets = append(in.ACL.Sets, set)
	}
	for _, id := range sortedKeys(dev.Acl.Interface) {
		if b, ok := t.aclBinding(dev.Acl.Interface[id], id, sets); ok {
			in.ACL.Bindings = append(in.ACL.Bindings, b)
		}
	}
}

// aclType maps an OpenConfig ACL type to switchd's; ok is false for the
// types switchd does not filter (L2, MPLS: it routes, and matches IP).
func aclType(t oc.E_Acl_ACL_TYPE) (policy.ACLType, bool) {
	switch t {
	case oc.Acl_ACL_TYPE_ACL_IPV4:
		return policy.ACLIPv4, true
	case oc.Acl_ACL_TYPE_ACL_IPV6:
		return policy.ACLIPv6, true
	case oc.Acl_ACL_TYPE_ACL_MIXED:
		return policy.ACLMixed, true
	}
	return 0, false
}

func (t *translator) aclSet(s *oc.Acl_AclSet, k oc.Acl_AclSet_Key, p path, defined *definedSets) (policy.ACLSet, bool) {
	typ, ok := aclType(k.Type)
	if !ok {
		t.add(p.child("config").child("type"), fmt.Sprintf("%s sets are not supported by switchd (ACL_IPV4, ACL_IPV6 and ACL_MIXED are)", enumName(k.Type)))
		return policy.ACLSet{}, false
	}
	if !t.nftName(k.Name, p) {
		return policy.ACLSet{}, false
	}
	set := policy.ACLSet{Name: k.Name, Type: typ}
	seqs := make([]uint32, 0, len(s.AclEntry))
	for seq := range s.AclEntry {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	good := true
	for _, seq := range seqs {
		ep := p.child("acl-entries").entry("acl-entry", []kv{{"sequence-id", strconv.FormatUint(uint64(seq), 10)}})
		e, ok := t.aclEntry(s.AclEntry[seq], typ, ep, defined)
		if !ok {
			good = false
			continue
		}
		e.Seq = seq
		set.Entries = append(set.Entries, e)
	}
	return set, good
}

// l3 is what an entry's ipv4 or ipv6 container says, read alike.
type l3 struct {
	name                     string // "ipv4" or "ipv6"
	family                   policy.ACLType
	src, srcSet, dst, dstSet *string
	dscp                     *uint8
	dscpSet                  []uint8
	hopLimit                 *uint8
	protocol                 any // the generated union value
}

func (t *translator) aclEntry(e *oc.Acl_AclSet_AclEntry, typ policy.ACLType, p path, defined *definedSets) (policy.ACLEntry, bool) {
	out := policy.ACLEntry{Family: typ}
	if typ == policy.ACLMixed {
		out.Family = 0
	}
	n := len(t.list)
	var m *l3
	if v4 := e.Ipv4; v4 != nil {
		m = &l3{name: "ipv4", family: policy.ACLIPv4, src: v4.SourceAddress, srcSet: v4.SourceAddressPrefixSet,
			dst: v4.DestinationAddress, dstSet: v4.DestinationAddressPrefixSet, dscp: v4.Dscp, dscpSet: v4.DscpSet,
			hopLimit: v4.HopLimit, protocol: v4.Protocol}
	}
	if v6 := e.Ipv6; v6 != nil {
		if m != nil {
			t.add(p, "an entry matches ipv4 or ipv6 fields, not both (use two entries of the ACL_MIXED set)")
			return out, false
		}
		m = &l3{name: "ipv6", family: policy.ACLIPv6, src: v6.SourceAddress, srcSet: v6.SourceAddressPrefixSet,
			dst: v6.DestinationAddress, dstSet: v6.DestinationAddressPrefixSet, dscp: v6.Dscp, dscpSet: v6.DscpSet,
			hopLimit: v6.HopLimit, protocol: v6.Protocol}
	}
	if m != nil {
		t.aclL3(m, typ, p.child(m.name), defined, &out)
	}
	t.aclTransport(e.Transport, p.child("transport"), m, defined, &out)
	a := e.Actions
	switch a.GetForwardingAction() {
	case oc.Acl_FORWARDING_ACTION_ACCEPT:
		out.Action = policy.ACLAccept
	case oc.Acl_FORWARDING_ACTION_DROP:
		out.Action = policy.ACLDrop
	case oc.Acl_FORWARDING_ACTION_REJECT:
		out.Action = policy.ACLReject
	default:
		t.add(p.child("actions").child("config").child("forwarding-action"), "an ACL entry needs a forwarding-action (ACCEPT, DROP or REJECT)")
	}
	out.Log = a.GetLogAction() == oc.Acl_LOG_ACTION_LOG_SYSLOG
	return out, len(t.list) == n
}

// aclL3 reads the ipv4 or ipv6 container m of an entry of a set of type
// typ.
func (t *translator) aclL3(m *l3, typ policy.ACLType, p path, defined *definedSets, out *policy.ACLEntry) {
	if typ != policy.ACLMixed && typ != m.family {
		t.add(p, fmt.Sprintf("%s matches in an %s set", m.name, typ))
		return
	}
	out.Family = m.family
	cp := p.child("config")
	out.Src = t.aclAddr(m, m.src, m.srcSet, "source-address", cp, defined)
	out.Dst = t.aclAddr(m, m.dst, m.dstSet, "destination-address", cp, defined)
	switch {
	case m.dscp != nil && len(m.dscpSet) > 0:
		t.add(cp.child("dscp-set"), "give dscp or dscp-set, not both")
	case m.dscp != nil:
		out.DSCP = []uint8{*m.dscp}
	default:
		out.DSCP = slices.Compact(slices.Sorted(slices.Values(m.dscpSet)))
	}
	out.HopLimit = m.hopLimit
	if m.protocol != nil {
		proto, ok := ipProtocol(m.protocol, m.family)
		switch {
		case !ok:
			t.add(cp.child("protocol"), fmt.Sprintf("protocol %v is not supported by switchd", m.protocol))
		case proto == 0:
			// 0 is HOPOPT, which is no transport protocol: the kernel's
			// l4proto never is 0. Leaving protocol out matches any.
			t.add(cp.child("protocol"), "protocol 0 (IPv6 hop-by-hop options) cannot be matched; leave protocol out to match any")
		default:
			out.Protocol = proto
		}
	}
}

// aclAddr reads one address match: leaf (a prefix) or leaf-prefix-set (a
// defined set's name), not both.
func (t *translator) aclAddr(m *l3, pfx, set *string, leaf string, cp path, defined *definedSets) policy.AddrMatch {
	var out policy.AddrMatch
	if pfx != nil && set != nil {
		t.add(cp.child(leaf+"-prefix-set"), fmt.Sprintf("give %s or %s-prefix-set, not both", leaf, leaf))
		return out
	}
	if pfx != nil {
		lp := cp.child(leaf)
		p, ok := t.prefix(*pfx, lp)
		if !ok {
			return out
		}
		if fam := familyOf(p.Addr()); fam != m.family {
			t.add(lp, fmt.Sprintf("%s prefix %v in %s matches", fam, p, m.name))
			return out
		}
		out.Prefix = p
	}
	if set != nil {
		sp := cp.child(leaf + "-prefix-set")
		own, other := defined.v4, defined.v6
		if m.family == policy.ACLIPv6 {
			own, other = other, own
		}
		switch {
		case own[*set]:
			out.Set = *set
		case other[*set]:
			t.add(sp, fmt.Sprintf("%q is an %s prefix set, not an %s one (%s matches)", *set, otherFamily(m.family), m.family, m.name))
		default:
			t.add(sp, fmt.Sprintf("unknown defined set %q: no %s at /defined-sets", *set, strings.ToLower(m.name)+"-prefix-set"))
		}
	}
	return out
}

func familyOf(a netip.Addr) policy.ACLType {
	if a.Is4() {
		return policy.ACLIPv4
	}
	return policy.ACLIPv6
}

func otherFamily(f policy.ACLType) policy.ACLType {
	if f == policy.ACLIPv4 {
		return policy.ACLIPv6
	}
	return policy.ACLIPv4
}

// ipProtocols are the IP_PROTOCOL identities' numbers (IANA). IP_ICMP in
// an ipv6 container is ICMPv6: ICMP for IPv4 never travels in IPv6.
var ipProtocols = map[oc.E_PacketMatchTypes_IP_PROTOCOL]uint8{
	oc.PacketMatchTypes_IP_PROTOCOL_IP_ICMP:  1,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_IGMP:  2,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_IN_IP: 4,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_TCP:   6,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_UDP:   17,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_RSVP:  46,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_GRE:   47,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_AUTH:  51,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_PIM:   103,
	oc.PacketMatchTypes_IP_PROTOCOL_IP_L2TP:  115,
}

func ipProtocol(v any, family policy.ACLType) (uint8, bool) {
	switch v := v.(type) {
	case oc.UnionUint8:
		return uint8(v), true
	case oc.E_PacketMatchTypes_IP_PROTOCOL:
		n, ok := ipProtocols[v]
		if ok && n == policy.ProtoICMP && family == policy.ACLIPv6 {
			n = policy.ProtoICMPv6
		}
		return n, ok
	}
	return 0, false
}

var protoNames = map[uint8]string{policy.ProtoTCP: "TCP", policy.ProtoUDP: "UDP", policy.ProtoSCTP: "SCTP"}

// aclTransport reads an entry's transport container. m is its ipv4 or
// ipv6 container (nil if none), where the protocol was given.
func (t *translator) aclTransport(tr *oc.Acl_AclSet_AclEntry_Transport, p path, m *l3, defined *definedSets, out *policy.ACLEntry) {
	if tr == nil {
		return
	}
	cp := p.child("config")
	protoLeaf := "ipv4/config/protocol (or ipv6/config/protocol)"
	if m != nil {
		protoLeaf = m.name + "/config/protocol"
	}
	ports := func(leaf string, v any, set *string) policy.PortMatch {
		var pm policy.PortMatch
		if v != nil && set != nil {
			t.add(cp.child(leaf+"-set"), fmt.Sprintf("give %s or %s-set, not both", leaf, leaf))
			return pm
		}
		lp := cp.child(leaf)
		if v != nil {
			r, ok, err := portRange(v)
			if err != nil {
				t.add(lp, err.Error())
				return pm
			}
			if ok {
				pm.Ranges = []policy.PortRange{r}
			}
		}
		if set != nil {
			lp = cp.child(leaf + "-set")
			if !defined.ports[*set] {
				t.add(lp, fmt.Sprintf("unknown defined set %q: no port-set at /defined-sets", *set))
				return pm
			}
			pm.Set = *set
		}
		if !pm.Any() && !policy.HasPorts(out.Protocol) {
			t.add(lp, fmt.Sprintf("a port match needs protocol TCP, UDP or SCTP at %s%s", protoLeaf, protoNow(out.Protocol)))
			return policy.PortMatch{}
		}
		return pm
	}
	out.SrcPorts = ports("source-port", tr.SourcePort, tr.SourcePortSet)
	out.DstPorts = ports("destination-port", tr.DestinationPort, tr.DestinationPortSet)

	var f *policy.TCPFlagMatch
	var fp path
	switch tr.DetailMode {
	case oc.Transport_DetailMode_UNSET:
		if len(tr.ExplicitTcpFlags) > 0 || tr.ExplicitDetailMatchMode != 0 || tr.BuiltinDetail != 0 {
			t.add(cp.child("detail-mode"), "explicit-tcp-flags, explicit-detail-match-mode and builtin-detail need detail-mode (EXPLICIT or BUILTIN)")
		}
	case oc.Transport_DetailMode_EXPLICIT:
		fp = cp.child("explicit-tcp-flags")
		if tr.BuiltinDetail != 0 {
			t.add(cp.child("builtin-detail"), "builtin-detail needs detail-mode BUILTIN")
		}
		var mask uint8
		for _, fl := range tr.ExplicitTcpFlags {
			mask |= tcpFlagBits[fl]
		}
		if mask == 0 {
			t.add(fp, "detail-mode EXPLICIT needs explicit-tcp-flags")
			break
		}
		// ANY when the mode is not given: a list of flags reads as "any
		// of these" unless ALL says otherwise.
		if tr.ExplicitDetailMatchMode == oc.Transport_ExplicitDetailMatchMode_ALL {
			f = &policy.TCPFlagMatch{Mask: mask, Value: mask}
		} else {
			f = &policy.TCPFlagMatch{Mask: mask, Any: true}
		}
	case oc.Transport_DetailMode_BUILTIN:
		fp = cp.child("builtin-detail")
		if len(tr.ExplicitTcpFlags) > 0 || tr.ExplicitDetailMatchMode != 0 {
			t.add(cp.child("explicit-tcp-flags"), "explicit-tcp-flags and explicit-detail-match-mode need detail-mode EXPLICIT")
		}
		switch tr.BuiltinDetail {
		case oc.Transport_BuiltinDetail_TCP_INITIAL: // SYN without ACK
			f = &policy.TCPFlagMatch{Mask: policy.TCPSyn | policy.TCPAck, Value: policy.TCPSyn}
		case oc.Transport_BuiltinDetail_TCP_ESTABLISHED: // ACK or RST
			f = &policy.TCPFlagMatch{Mask: policy.TCPAck | policy.TCPRst, Any: true}
		case oc.Transport_BuiltinDetail_FRAGMENT:
			t.add(fp, "builtin-detail FRAGMENT is not supported by switchd")
		default:
			t.add(fp, "detail-mode BUILTIN needs builtin-detail")
		}
	}
	if f != nil {
		if out.Protocol != policy.ProtoTCP {
			t.add(fp, fmt.Sprintf("a TCP flags match needs protocol TCP at %s%s", protoLeaf, protoNow(out.Protocol)))
			return
		}
		out.TCPFlags = f
	}
}

func protoNow(proto uint8) string {
	if proto == 0 {
		return " (none is given)"
	}
	if n, ok := protoNames[proto]; ok {
		return fmt.Sprintf(" (it is %s)", n)
	}
	return fmt.Sprintf(" (it is %d)", proto)
}

var tcpFlagBits = map[oc.E_PacketMatchTypes_TCP_FLAGS]uint8{
	oc.PacketMatchTypes_TCP_FLAGS_TCP_FIN: policy.TCPFin,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_SYN: policy.TCPSyn,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_RST: policy.TCPRst,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_PSH: policy.TCPPsh,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_ACK: policy.TCPAck,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_URG: policy.TCPUrg,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_ECE: policy.TCPEce,
	oc.PacketMatchTypes_TCP_FLAGS_TCP_CWR: policy.TCPCwr,
}

// portRange reads a port-num-range value: a port, "lo..hi", or ANY
// (ok false: no match on the port).
func portRange(v any) (r policy.PortRange, ok bool, err error) {
	switch v := v.(type) {
	case oc.UnionUint16:
		return policy.PortRange{First: uint16(v), Last: uint16(v)}, true, nil
	case oc.E_PacketMatchTypes_PortNumRange_Enum:
		return r, false, nil // ANY
	case oc.UnionString:
		lo, hi, found := strings.Cut(string(v), "..")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if !found || err1 != nil || err2 != nil {
			return r, false, fmt.Errorf("invalid port range %q: want FIRST..LAST", string(v))
		}
		if a > b {
			return r, false, fmt.Errorf("port range %q starts after it ends", string(v))
		}
		return policy.PortRange{First: uint16(a), Last: uint16(b)}, true, nil
	}
	return r, false, fmt.Errorf("invalid port %v", v)
}

// maxNameLen bounds the names of ACL sets and defined sets: switchd
// names nftables chains and sets after them, and the kernel takes 255
// bytes with switchd's prefix.
const maxNameLen = 200

func (t *translator) nftName(name string, p path) bool {
	if len(name) > maxNameLen {
		t.add(p.child("config").child("name"), fmt.Sprintf("name longer than %d bytes (switchd names nftables objects after it)", maxNameLen))
		return false
	}
	return true
}

// definedSets is /defined-sets translated, with the names for lookups.
type definedSets struct {
	out           policy.DefinedSets
	v4, v6, ports map[string]bool
}

func (t *translator) definedSets(ds *oc.DefinedSets) *definedSets {
	d := &definedSets{v4: map[string]bool{}, v6: map[string]bool{}, ports: map[string]bool{}}
	if ds == nil {
		return d
	}
	for _, name := range sortedKeys(ds.Ipv4PrefixSet) {
		p := dsPath.child("ipv4-prefix-sets").entry("ipv4-prefix-set", []kv{{"name", name}})
		if !t.nftName(name, p) {
			continue
		}
		if s, ok := t.prefixList(name, ds.Ipv4PrefixSet[name].Prefix, policy.ACLIPv4, p); ok {
			d.out.IPv4 = append(d.out.IPv4, s)
			d.v4[name] = true
		}
	}
	for _, name := range sortedKeys(ds.Ipv6PrefixSet) {
		p := dsPath.child("ipv6-prefix-sets").entry("ipv6-prefix-set", []kv{{"name", name}})
		if !t.nftName(name, p) {
			continue
		}
		if s, ok := t.prefixList(name, ds.Ipv6PrefixSet[name].Prefix, policy.ACLIPv6, p); ok {
			d.out.IPv6 = append(d.out.IPv6, s)
			d.v6[name] = true
		}
	}
	for _, name := range sortedKeys(ds.PortSet) {
		sp := dsPath.child("port-sets").entry("port-set", []kv{{"name", name}})
		if !t.nftName(name, sp) {
			continue
		}
		p := sp.child("config").child("port")
		s := policy.PortSet{Name: name}
		good := true
		for _, v := range ds.PortSet[name].Port {
			r, ok, err := portRange(v)
			switch {
			case err != nil:
				t.add(p, err.Error())
				good = false
			case !ok:
				t.add(p, "ANY in a port set: leave the port match out of the entry to match any port")
				good = false
			default:
				s.Ranges = append(s.Ranges, r)
			}
		}
		if len(s.Ranges) == 0 && good {
			t.add(p, "a port set needs at least one port")
			good = false
		}
		if good {
			slices.SortFunc(s.Ranges, func(a, b policy.PortRange) int {
				return cmp.Or(cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
			})
			s.Ranges = slices.Compact(s.Ranges)
			d.out.Ports = append(d.out.Ports, s)
			d.ports[name] = true
		}
	}
	return d
}

func (t *translator) prefixList(name string, list []string, fam policy.ACLType, p path) (policy.PrefixSet, bool) {
	s := policy.PrefixSet{Name: name}
	lp := p.child("config").child("prefix")
	good := true
	for _, v := range list {
		pfx, ok := t.prefix(v, lp)
		if ok && familyOf(pfx.Addr()) != fam {
			t.add(lp, fmt.Sprintf("%s prefix %v in an %s prefix set", familyOf(pfx.Addr()), pfx, fam))
			ok = false
		}
		good = good && ok
		s.Prefixes = append(s.Prefixes, pfx)
	}
	if len(list) == 0 {
		// An empty set would make an entry naming it match nothing,
		// silently.
		t.add(lp, "a prefix set needs at least one prefix")
		good = false
	}
	slices.SortFunc(s.Prefixes, comparePrefix)
	s.Prefixes = slices.Compact(s.Prefixes)
	return s, good
}

func (t *translator) aclBinding(i *oc.Acl_Interface, id string, sets map[policy.ACLSetKey]bool) (policy.ACLBinding, bool) {
	p := aclPath.child("interfaces").entry("interface", []kv{{"id", id}})
	b := policy.ACLBinding{Interface: id}
	if reason := badIfName(id); reason != "" {
		t.add(p.child("config").child("id"), fmt.Sprintf("interface id %q: %s (switchd takes the id as the kernel's interface name)", id, reason))
		return b, false
	}
	n := len(t.list)
	bind := func(dir string, k oc.E_Acl_ACL_TYPE, name string) (policy.ACLSetKey, bool) {
		sp := p.child(dir+"-acl-sets").entry(dir+"-acl-set", []kv{{"set-name", name}, {"type", enumName(k)}})
		typ, ok := aclType(k)
		key := policy.ACLSetKey{Name: name, Type: typ}
		if !ok || !sets[key] {
			var others []string
			for s := range sets {
				if s.Name == name {
					others = append(others, s.Type.String())
				}
			}
			slices.Sort(others)
			reason := fmt.Sprintf("no ACL set %q of type %s at /acl/acl-sets", name, enumName(k))
			if len(others) > 0 {
				reason += fmt.Sprintf(" (there is one of type %s)", strings.Join(others, ", "))
			}
			t.add(sp, reason)
			return key, false
		}
		return key, true
	}
	for k := range i.IngressAclSet {
		if key, ok := bind("ingress", k.Type, k.SetName); ok {
			b.Ingress = append(b.Ingress, key)
		}
	}
	for k := range i.EgressAclSet {
		if key, ok := bind("egress", k.Type, k.SetName); ok {
			b.Egress = append(b.Egress, key)
		}
	}
	byKey := func(a, b policy.ACLSetKey) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Type, b.Type))
	}
	slices.SortFunc(b.Ingress, byKey)
	slices.SortFunc(b.Egress, byKey)
	return b, len(t.list) == n
}

// badIfName says what makes s no Linux interface name ("" if nothing).
func badIfName(s string) string {
	switch {
	case s == "" || s == "." || s == "..":
		return "not an interface name"
	case len(s) > 15:
		return "longer than 15 bytes"
	case strings.ContainsAny(s, "/: \t\n"):
		return "contains '/', ':' or white space"
	}
	return ""
}

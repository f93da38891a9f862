package policy

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Anti-spoofing (SlotAntiSpoof, in prerouting): a packet that arrives from
// a workload interface (container veth or VM tap) with a source address
// that is not one of that endpoint's is dropped, before routing, so it is
// dropped whether it is for the host or to be forwarded (IPv6 has no
// rp_filter, and IPv4's is per interface, not per endpoint).
//
// Membership is data: the chain's rules are fixed and never mention an
// endpoint. An endpoint is an interface name in SetAntiSpoofIfaces (which
// makes the interface a workload's, so its packets are checked) and its
// (interface . address) pairs in SetAntiSpoofSrc4/SetAntiSpoofSrc6; adding,
// deleting or moving an endpoint changes elements only (antiSpoofElements).
//
// What a workload may send without one of its addresses:
//   - IPv6 link-local sources (fe80::/10): NDP (neighbor and router
//     solicitations), MLD, and talking to the host's link-local address.
//     Harmless: the kernel never forwards a packet with a link-local
//     source (ip6_forward refuses it), and the link is the workload's own.
//   - The unspecified source :: with ICMPv6 only: duplicate address
//     detection sends its neighbor solicitations (and MLD reports) from ::
//     before the address is usable (RFC 4862 §5.4.2).
//   - No DHCP (IPv4 source 0.0.0.0): workloads get their addresses
//     statically (IPAM through CNI, or the VM request) and the host runs no
//     DHCP server to answer. A workload that tries anyway is counted as a
//     spoof, which is what it looks like to the host.
//
// ARP is not IP and never reaches an inet table; proxy ARP answers are the
// host's own.
const (
	SetAntiSpoofIfaces = "antispoof-ifaces" // ifname: interfaces whose sources are checked
	SetAntiSpoofSrc4   = "antispoof-src4"   // ifname . ipv4_addr: the sources each may use
	SetAntiSpoofSrc6   = "antispoof-src6"   // ifname . ipv6_addr
)

// Rule IDs of the anti-spoofing chain that carry counters (Counters
// reports them under these IDs): the two drops, and the IPv6 exceptions
// (so the status can show how much NDP and DAD traffic they let by).
const (
	RuleSpoof4       = "spoof4"
	RuleSpoof6       = "spoof6"
	RuleLinkLocal6   = "link-local6"
	RuleUnspecified6 = "unspecified6"
)

// antiSpoofSlot is the SlotAntiSpoof chain and the sets it looks up. It
// does not depend on the endpoints: their elements come from
// antiSpoofElements.
func antiSpoofSlot() (Chain, []Set) {
	sets := []Set{
		{Name: SetAntiSpoofIfaces, KeyType: nftables.TypeIFName},
		{Name: SetAntiSpoofSrc4, KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)},
		{Name: SetAntiSpoofSrc6, KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)},
	}
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	rules := []ChainRule{
		// Not from a workload: nothing to check (one lookup, then back
		// to the base chain).
		{ID: "not-workload", Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: SetAntiSpoofIfaces, Invert: true},
			ret,
		}},
		{ID: RuleSpoof4, Exprs: joinExprs(
			guardNFProto(unix.NFPROTO_IPV4),
			ifaceSaddrNotIn(SetAntiSpoofSrc4, 12, 4),
			[]expr.Any{&expr.Counter{}, drop},
		)},
		{ID: RuleLinkLocal6, Exprs: joinExprs(
			guardNFProto(unix.NFPROTO_IPV6),
			[]expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0xc0}, Xor: []byte{0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0xfe, 0x80}},
				&expr.Counter{},
				ret,
			},
		)},
		{ID: RuleUnspecified6, Exprs: joinExprs(
			guardNFProto(unix.NFPROTO_IPV6),
			guardL4Proto(unix.IPPROTO_ICMPV6),
			[]expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 16)},
				&expr.Counter{},
				ret,
			},
		)},
		{ID: RuleSpoof6, Exprs: joinExprs(
			guardNFProto(unix.NFPROTO_IPV6),
			ifaceSaddrNotIn(SetAntiSpoofSrc6, 8, 16),
			[]expr.Any{&expr.Counter{}, drop},
		)},
	}
	return Chain{Name: SlotAntiSpoof, Rules: rules}, sets
}

// ifaceSaddrNotIn is `iifname . <ip|ip6> saddr != @set`: the name in
// 32-bit registers 8-11, the source right after it, as the kernel lays
// out a concatenated key.
func ifaceSaddrNotIn(set string, off, n uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 8},
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 8, SetName: set, Invert: true},
	}
}

// antiSpoofElements are endpoint ep's elements, by set name: its interface
// and one (interface . address) pair per address. The engine adds them
// when the endpoint appears and deletes them when it goes; a move (another
// interface or other addresses) deletes the old endpoint's and adds the
// new one's, in the same Apply, so no rule changes. An endpoint without an
// interface has nothing to check (nil).
//
// An endpoint with an interface but no address of a family can send
// nothing of that family (but the link-local and DAD traffic above).
func antiSpoofElements(ep Endpoint) map[string][]Element {
	if ep.Interface == "" {
		return nil
	}
	name := IfName(ep.Interface)
	out := map[string][]Element{SetAntiSpoofIfaces: {{Key: name}}}
	for _, a := range keyAddrs(ep.Addrs) {
		set := SetAntiSpoofSrc6
		if a.Is4() {
			set = SetAntiSpoofSrc4
		}
		out[set] = append(out[set], Element{Key: Concat(name, a.AsSlice())})
	}
	return out
}

// keyAddrs are addrs as set keys take them: IPv4-mapped IPv6 as IPv4, no
// zone (a link-local neighbor's interface is not part of its key), each
// once, invalid ones left out.
func keyAddrs(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// guardNFProto is `meta nfproto p`: the inet family sees both IPv4 and
// IPv6, and a network-header offset means something in one of them only.
func guardNFProto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// guardL4Proto is `meta l4proto p` (the transport protocol after any IPv6
// extension headers).
func guardL4Proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// joinExprs joins expression lists into one rule.
func joinExprs(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

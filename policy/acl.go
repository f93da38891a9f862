package policy

import (
	"fmt"
	"net/netip"
)

// ACLIntent is the validated form of OpenConfig's /acl and the
// /defined-sets it refers to: plain values, checked by switchd/config
// (which reports problems at their OpenConfig paths), so compiling it
// cannot fail on its content.
type ACLIntent struct {
	// Sets are sorted by name, then type.
	Sets []ACLSet
	// Defined are the prefix and port sets entries name; each becomes a
	// named nftables set rather than one rule per member.
	Defined DefinedSets
	// Bindings are sorted by interface.
	Bindings []ACLBinding
}

// ACLType is the kind of an ACL set (OpenConfig ACL_IPV4, ACL_IPV6,
// ACL_MIXED): which packets its entries see.
type ACLType uint8

const (
	ACLIPv4 ACLType = iota + 1
	ACLIPv6
	ACLMixed
)

func (t ACLType) String() string {
	switch t {
	case ACLIPv4:
		return "ACL_IPV4"
	case ACLIPv6:
		return "ACL_IPV6"
	case ACLMixed:
		return "ACL_MIXED"
	}
	return fmt.Sprintf("ACLType(%d)", t)
}

// ACLSetKey names an ACL set as OpenConfig keys it: two sets may share a
// name if their types differ.
type ACLSetKey struct {
	Name string
	Type ACLType
}

func (k ACLSetKey) String() string { return k.Name + "/" + k.Type.String() }

// ACLSet is one ACL set. A packet is matched against its entries in
// sequence order; the first entry that matches decides: DROP and REJECT
// end the packet, ACCEPT ends the set. A packet no entry matches passes
// the set too: a set that denies by default ends with a DROP entry.
type ACLSet struct {
	Name    string
	Type    ACLType
	Entries []ACLEntry // by Seq, ascending
}

// Key is the set's OpenConfig key.
func (s *ACLSet) Key() ACLSetKey { return ACLSetKey{s.Name, s.Type} }

// ACLAction is what an entry does with a packet it matches.
type ACLAction uint8

const (
	ACLAccept ACLAction = iota
	ACLDrop
	// ACLReject drops and answers: a TCP reset for TCP, ICMP
	// unreachable for anything else.
	ACLReject
)

func (a ACLAction) String() string {
	switch a {
	case ACLAccept:
		return "ACCEPT"
	case ACLDrop:
		return "DROP"
	case ACLReject:
		return "REJECT"
	}
	return fmt.Sprintf("ACLAction(%d)", a)
}

// ACLEntry is one entry of an ACL set. It matches a packet when every
// field that is set matches.
type ACLEntry struct {
	Seq uint32
	// Family is the address family the entry matches: IPv4 or IPv6 for
	// an entry with ipv4 or ipv6 matches (or in a set of that type), 0
	// for an entry of an ACL_MIXED set that matches both.
	Family ACLType
	// Src and Dst match the source and destination address.
	Src, Dst AddrMatch
	// Protocol is the IP protocol (IPv6: the transport header's); 0
	// matches any.
	Protocol uint8
	// DSCP matches any of these code points; empty matches any.
	DSCP []uint8
	// HopLimit matches the IPv4 TTL or IPv6 hop limit; nil matches any.
	HopLimit *uint8
	// SrcPorts and DstPorts are set only with a protocol that has ports
	// (HasPorts).
	SrcPorts, DstPorts PortMatch
	// TCPFlags is set only with protocol TCP.
	TCPFlags *TCPFlagMatch
	Action   ACLAction
	// Log logs the packets the entry matches (before the action).
	Log bool
}

// AddrMatch matches an address: by Prefix, or by membership of the
// defined prefix set named Set (of the entry's family). The zero value
// matches any.
type AddrMatch struct {
	Prefix netip.Prefix
	Set    string
}

// Any reports whether m matches any address.
func (m AddrMatch) Any() bool { return !m.Prefix.IsValid() && m.Set == "" }

// PortMatch matches a port: one of Ranges, or a member of the defined
// port set named Set. The zero value matches any.
type PortMatch struct {
	Ranges []PortRange
	Set    string
}

// Any reports whether m matches any port.
func (m PortMatch) Any() bool { return len(m.Ranges) == 0 && m.Set == "" }

// TCP flag bits as they are in the TCP header.
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// TCPFlagMatch matches the TCP flags: if Any, a packet matches when any
// flag of Mask is set; otherwise when its flags masked with Mask equal
// Value.
type TCPFlagMatch struct {
	Mask, Value uint8
	Any         bool
}

// DefinedSets are the address and port lists ACL entries refer to by
// name (OpenConfig /defined-sets), each sorted by name. IPv4 and IPv6
// prefix sets have names of their own: one name may be in both.
type DefinedSets struct {
	IPv4, IPv6 []PrefixSet
	Ports      []PortSet
}

// PrefixSet is a named list of prefixes of one family.
type PrefixSet struct {
	Name     string
	Prefixes []netip.Prefix // sorted, masked
}

// PortSet is a named list of ports and port ranges.
type PortSet struct {
	Name   string
	Ranges []PortRange // sorted by First
}

// ACLBinding is the ACL sets bound to one interface. Sets bound in a
// direction are applied in the order given (OpenConfig gives none;
// switchd/config sorts them by name, then type); a packet passes when
// none of them drops it.
type ACLBinding struct {
	// Interface is the kernel's name of the interface.
	Interface       string
	Ingress, Egress []ACLSetKey
}

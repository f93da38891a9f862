package policy

import (
	"fmt"
	"net/netip"
)

// Intent is validated workload policy, what the compiler takes: plain
// values, checked by switchd/config (which reports problems at their
// OpenConfig paths), so compiling it cannot fail on its content.
type Intent struct {
	// Default is what an endpoint no policy selects (for a direction)
	// gets in that direction: Allow or Deny.
	Default Action
	// Policies are sorted by Order, then Name: the order they are
	// evaluated in for an endpoint they select.
	Policies []Policy
	// FailsafeExtra are ports the host keeps open beside the built-in
	// failsafe ones; they can only add.
	FailsafeExtra Failsafe
	// NetworkSets are labelled addresses a peer selector matches beside
	// the endpoints (never a policy's own selector), sorted by Name.
	NetworkSets []NetworkSet
	// Interfaces are the names the host gives workload interfaces: a
	// name ending in "*" is a prefix (the veth prefix), any other a whole
	// name (a configured VM's tap). While policy is in force (some policy,
	// or Default Deny), a packet to or from such an interface that no
	// endpoint holds is dropped: a workload is closed until policy knows
	// it, not open.
	Interfaces []string
}

// NetworkSet is a labelled set of prefixes that are not endpoints of this
// host: workloads elsewhere, external networks (Calico's
// GlobalNetworkSet). A host is a /32 or a /128.
type NetworkSet struct {
	Name     string
	Labels   map[string]string
	Prefixes []netip.Prefix
}

// Action is what a rule does with a packet it matches.
type Action uint8

const (
	// Allow lets the packet pass (the zero Action, so an Intent's zero
	// Default leaves unselected endpoints open).
	Allow Action = iota
	// Deny drops it.
	Deny
	// Log logs it and goes on to the next rule.
	Log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Log:
		return "log"
	}
	return fmt.Sprintf("Action(%d)", a)
}

// Policy is one workload policy. With Kubernetes NetworkPolicy semantics:
// an endpoint the Selector matches denies, in each direction the policy
// selects it for, what no rule of any policy selecting it allows.
type Policy struct {
	Name     string
	Order    uint32
	Selector Selector
	// SelectsIngress and SelectsEgress are the directions the policy
	// applies in (Kubernetes' policyTypes); a direction without rules
	// denies all of it.
	SelectsIngress, SelectsEgress bool
	// Ingress and Egress are the rules, by sequence id.
	Ingress, Egress []Rule
}

// Protocol numbers a Rule may name; 0 means any.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// HasPorts reports whether protocol proto has ports to match.
func HasPorts(proto uint8) bool {
	return proto == ProtoTCP || proto == ProtoUDP || proto == ProtoSCTP
}

// Rule is one ingress or egress rule. A packet matches when every field
// that is set matches; Peer is the other side (the source for ingress,
// the destination for egress).
type Rule struct {
	Seq      uint32
	Action   Action
	Protocol uint8 // 0: any
	// SrcPorts and DstPorts are set only with a protocol that has ports
	// (HasPorts); empty means any.
	SrcPorts, DstPorts []PortRange
	Peer               Peer
}

// PortRange is an inclusive range of ports; a single port has First ==
// Last.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Peer is the other side of a rule. The zero Peer matches anything.
type Peer struct {
	// Selector, if not nil, matches the addresses of the endpoints and
	// the prefixes of the network sets it selects: its sets are shared
	// with every other use of the same selector (Selector.String names
	// it).
	Selector *Selector
	// CIDRs, if any, match these addresses except those in Except, each
	// of which lies within one of CIDRs. With Selector, both must match.
	CIDRs, Except []netip.Prefix
}

// Failsafe are ports the host keeps open whatever policy says, in both
// directions.
type Failsafe struct {
	TCP, UDP []uint16
}

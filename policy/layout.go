package policy

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The table's layout. Each hook has one base chain of switchd's, and it
// holds nothing but jumps into the chains of each concern ("slots"), in a
// fixed order. One base chain per hook matters: an accept in a chain
// jumped to ends the evaluation of that base chain only, so the failsafe
// accepts must come first in the same base chain as every user rule, or a
// user's drop would still cut BGP. Slot chains end without a verdict for
// what they do not decide, so evaluation returns to the next jump.
//
// Base chains accept by default: switchd denies only what a rule says (an
// ACL entry, a workload policy, a forged source), never the host as a whole.
const (
	// SlotAntiSpoof (prerouting) drops packets from a workload interface
	// whose source is not that endpoint's.
	SlotAntiSpoof = "antispoof"
	// SlotFailsafeIn and SlotFailsafeOut (input, output) accept what the
	// host must keep whatever the policy says: BGP with configured
	// neighbors, BFD, SSH, the gNMI port, the ICMP that NDP, PMTU and ping
	// need, loopback, and the configured extra ports.
	SlotFailsafeIn  = "failsafe-in"
	SlotFailsafeOut = "failsafe-out"
	// SlotACLInput, SlotACLForward and SlotACLOutput hold the OpenConfig
	// ACLs bound to interfaces (ingress: by iifname; egress: by oifname).
	SlotACLInput   = "acl-input"
	SlotACLForward = "acl-forward"
	SlotACLOutput  = "acl-output"
	// SlotWorkloadInput and SlotWorkloadForward hold workload policy:
	// traffic from a workload to the host, and to or from a workload
	// through it.
	SlotWorkloadInput   = "workload-input"
	SlotWorkloadForward = "workload-forward"
)

// baseChain is one hook's base chain and the slots it jumps to, in order.
type baseChain struct {
	name     string
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	slots    []string
}

var layout = []baseChain{
	// Before routing, so a forged source is dropped whether the packet is
	// for the host or to be forwarded (IPv6 has no rp_filter).
	{"prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityMangle, []string{SlotAntiSpoof}},
	{"input", nftables.ChainHookInput, nftables.ChainPriorityFilter, []string{SlotFailsafeIn, SlotACLInput, SlotWorkloadInput}},
	{"forward", nftables.ChainHookForward, nftables.ChainPriorityFilter, []string{SlotACLForward, SlotWorkloadForward}},
	{"output", nftables.ChainHookOutput, nftables.ChainPriorityFilter, []string{SlotFailsafeOut, SlotACLOutput}},
}

// BaseChains returns the base chains for the slot chains that exist: a
// slot nobody fills costs no jump, and a hook with no slot filled has no
// chain at all.
func BaseChains(filled func(slot string) bool) []Chain {
	accept := nftables.ChainPolicyAccept
	var out []Chain
	for _, b := range layout {
		c := Chain{Name: b.name, Hook: b.hook, Priority: b.priority, Type: nftables.ChainTypeFilter, Policy: &accept}
		for _, s := range b.slots {
			if filled(s) {
				c.Rules = append(c.Rules, jumpRule(s))
			}
		}
		if len(c.Rules) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Endpoint is a workload as policy sees it. The daemon converts host's
// endpoint events into these; policy does not know host.
type Endpoint struct {
	ID string
	// Interface is the endpoint's interface on the host (veth or tap).
	Interface string
	// Addrs are the addresses the endpoint may send from.
	Addrs  []netip.Addr
	Labels map[string]string
}

// jumpRule is `jump chain`, with the ID "jump <chain>".
func jumpRule(chain string) ChainRule {
	return ChainRule{ID: "jump " + chain, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}}
}

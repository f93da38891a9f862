package kubernetes

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchd/switchd/policy"
)

// PolicyPrefix starts the name of every engine policy compiled from a
// NetworkPolicy: k8s:<namespace>/<name>.
const PolicyPrefix = "k8s:"

// NamedPorts are the numbers a named port has among the cluster's pods,
// by NamedPortKey: what a NetworkPolicy's named port may resolve to.
type NamedPorts map[string][]uint16

// Compiled is the engine's view of a set of NetworkPolicies.
type Compiled struct {
	// Policies, sorted by name; all allow rules, so their order does not
	// matter (Kubernetes: the union of the policies selecting a pod).
	Policies []policy.Policy
	// NamedPorts are the NamedPortKeys the policies name: when the numbers
	// pods give one of them change, the policies must be compiled again.
	NamedPorts []string
	// Problems are parts of policies that were left out, each affecting
	// only its own rule or peer (or its policy, if its podSelector is
	// bad): a rule without a usable peer matches nothing, as a named port
	// no pod has.
	Problems []error
}

var protocols = map[corev1.Protocol]uint8{
	corev1.ProtocolTCP:  policy.ProtoTCP,
	corev1.ProtocolUDP:  policy.ProtoUDP,
	corev1.ProtocolSCTP: policy.ProtoSCTP,
}

// Compile translates NetworkPolicies into engine policies. A policy
// selects the pods of its namespace its podSelector matches, in the
// directions of its policyTypes (none given: Ingress, plus Egress if it
// has egress rules); a selected direction without rules denies all of it.
//
// A named port resolves per pod through the pod's NamedPortKey label:
// for egress the rule's peer must be a pod whose label has the number
// (one rule per number in ports); for ingress the selected pod itself
// must, so each number N is a policy of its own that selects the
// policy's pods whose label is N and holds the rules naming the port.
func Compile(nps []*networkingv1.NetworkPolicy, ports NamedPorts) Compiled {
	c := &compiler{ports: ports, used: map[string]bool{}}
	for _, np := range nps {
		c.policy(np)
	}
	slices.SortFunc(c.out.Policies, func(a, b policy.Policy) int { return strings.Compare(a.Name, b.Name) })
	c.out.NamedPorts = slices.Sorted(maps.Keys(c.used))
	return c.out
}

type compiler struct {
	ports NamedPorts
	used  map[string]bool
	out   Compiled
}

// peer is a NetworkPolicyPeer (or, with neither field, any peer): the
// terms of a selector, or an ipBlock.
type peer struct {
	terms         []string
	ipBlock       bool
	cidrs, except []netip.Prefix
}

// portSet is a rule's ports of one protocol: all of them, or ranges.
type portSet struct {
	proto  uint8
	all    bool
	ranges []policy.PortRange
}

// namedPort is a port given by name.
type namedPort struct {
	proto uint8
	key   string // NamedPortKey
}

func (c *compiler) problem(np *networkingv1.NetworkPolicy, format string, args ...any) {
	c.out.Problems = append(c.out.Problems, fmt.Errorf("NetworkPolicy %s/%s: %s", np.Namespace, np.Name, fmt.Sprintf(format, args...)))
}

func (c *compiler) policy(np *networkingv1.NetworkPolicy) {
	name := PolicyPrefix + np.Namespace + "/" + np.Name
	own, err := selectorTerms(&np.Spec.PodSelector, identity)
	if err != nil {
		c.problem(np, "podSelector: %v; the policy is left out", err)
		return
	}
	own = append(own, inNamespace(np.Namespace))
	sel, err := selector(own...)
	if err != nil {
		c.problem(np, "podSelector: %v; the policy is left out", err)
		return
	}
	p := policy.Policy{Name: name, Selector: sel}
	if len(np.Spec.PolicyTypes) == 0 {
		p.SelectsIngress, p.SelectsEgress = true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			p.SelectsIngress = true
		case networkingv1.PolicyTypeEgress:
			p.SelectsEgress = true
		}
	}
	// named: NamedPortKey → number → the ingress rules naming it.
	named := map[string]map[uint16][]policy.Rule{}
	if p.SelectsIngress {
		var in []apiRule
		for i, r := range np.Spec.Ingress {
			in = append(in, apiRule{fmt.Sprintf("ingress[%d].from", i), fmt.Sprintf("ingress[%d].ports", i), r.From, r.Ports})
		}
		p.Ingress = c.rules(np, in, func(n namedPort, num uint16, peers []peer) []policy.Rule {
			if named[n.key] == nil {
				named[n.key] = map[uint16][]policy.Rule{}
			}
			named[n.key][num] = appendRules(named[n.key][num], peers, onePort(n.proto, num))
			return nil
		})
	}
	if p.SelectsEgress {
		var out []apiRule
		for i, r := range np.Spec.Egress {
			out = append(out, apiRule{fmt.Sprintf("egress[%d].to", i), fmt.Sprintf("egress[%d].ports", i), r.To, r.Ports})
		}
		p.Egress = c.rules(np, out, func(n namedPort, num uint16, peers []peer) []policy.Rule {
			// The destination must be a pod that calls num so.
			var withPort []peer
			for _, pe := range peers {
				t := append(slices.Clone(pe.terms), n.key+" == "+strconv.Quote(strconv.Itoa(int(num))))
				withPort = append(withPort, peer{terms: t, ipBlock: pe.ipBlock, cidrs: pe.cidrs, except: pe.except})
			}
			return appendRules(nil, withPort, onePort(n.proto, num))
		})
	}
	number(p.Ingress)
	number(p.Egress)
	c.out.Policies = append(c.out.Policies, p)
	for _, key := range slices.Sorted(maps.Keys(named)) {
		for num, rules := range named[key] {
			s, err := selector(append(slices.Clone(own), key+" == "+strconv.Quote(strconv.Itoa(int(num))))...)
			if err != nil {
				c.problem(np, "named port %s: %v", key, err)
				continue
			}
			number(rules)
			c.out.Policies = append(c.out.Policies, policy.Policy{
				Name:     fmt.Sprintf("%s#%s=%d", name, key, num),
				Selector: s, SelectsIngress: true, Ingress: rules,
			})
		}
	}
}

// apiRule is an ingress or egress rule of the API, with the names of its
// fields for problems.
type apiRule struct {
	peersField, portsField string
	peers                  []networkingv1.NetworkPolicyPeer
	ports                  []networkingv1.NetworkPolicyPort
}

// rules compiles the rules of one direction; each number a named port
// resolves to goes to named, which returns the rules to add for it.
func (c *compiler) rules(np *networkingv1.NetworkPolicy, in []apiRule, named func(namedPort, uint16, []peer) []policy.Rule) []policy.Rule {
	var out []policy.Rule
	for _, r := range in {
		peers := c.peers(np, r.peersField, r.peers)
		sets, names := c.portSets(np, r.portsField, r.ports)
		if peers == nil {
			continue
		}
		out = appendRules(out, peers, sets)
		for _, n := range names {
			for _, num := range c.ports[n.key] {
				out = append(out, named(n, num, peers)...)
			}
		}
	}
	return out
}

func onePort(proto uint8, num uint16) []portSet {
	return []portSet{{proto: proto, ranges: []policy.PortRange{{First: num, Last: num}}}}
}

// number gives rules their sequence ids in order.
func number(rs []policy.Rule) {
	for i := range rs {
		rs[i].Seq = uint32(i + 1)
	}
}

// appendRules adds an allow rule for each peer and port set (the rule
// matches a peer in any of peers on a port in any of sets).
func appendRules(out []policy.Rule, peers []peer, sets []portSet) []policy.Rule {
	for _, pe := range peers {
		var pp policy.Peer
		if len(pe.terms) > 0 {
			s, err := selector(pe.terms...)
			if err != nil {
				continue // peers() and the named-port terms checked them
			}
			pp.Selector = &s
		}
		pp.CIDRs, pp.Except = pe.cidrs, pe.except
		for _, ps := range sets {
			r := policy.Rule{Action: policy.Allow, Protocol: ps.proto, Peer: pp}
			if !ps.all {
				r.DstPorts = ps.ranges
			}
			out = append(out, r)
		}
	}
	return out
}

// peers translates a rule's from/to list: empty is any peer; nil means
// none is usable, so the rule matches nothing.
func (c *compiler) peers(np *networkingv1.NetworkPolicy, field string, in []networkingv1.NetworkPolicyPeer) []peer {
	if len(in) == 0 {
		return []peer{{}}
	}
	var out []peer
	for i, p := range in {
		where := fmt.Sprintf("%s[%d]", field, i)
		if p.IPBlock != nil {
			pe, err := ipBlock(p.IPBlock)
			if err != nil {
				c.problem(np, "%s.ipBlock: %v; the peer matches nothing", where, err)
				continue
			}
			out = append(out, pe)
			continue
		}
		if p.PodSelector == nil && p.NamespaceSelector == nil {
			c.problem(np, "%s: no selector and no ipBlock; the peer matches nothing", where)
			continue
		}
		s, err := peerSelector(np.Namespace, p.PodSelector, p.NamespaceSelector)
		if err != nil {
			c.problem(np, "%s: %v; the peer matches nothing", where, err)
			continue
		}
		out = append(out, peer{terms: []string{s.String()}})
	}
	return out
}

// ipBlock is an ipBlock peer; an except outside the CIDR or of the other
// family excludes nothing and is dropped.
func ipBlock(b *networkingv1.IPBlock) (peer, error) {
	cidr, err := parseCIDR(b.CIDR)
	if err != nil {
		return peer{}, fmt.Errorf("cidr %q: %v", b.CIDR, err)
	}
	pe := peer{ipBlock: true, cidrs: []netip.Prefix{cidr}}
	for _, e := range b.Except {
		x, err := parseCIDR(e)
		if err != nil {
			return peer{}, fmt.Errorf("except %q: %v", e, err)
		}
		if x.Addr().Is4() == cidr.Addr().Is4() && x.Bits() >= cidr.Bits() && cidr.Contains(x.Addr()) && !slices.Contains(pe.except, x) {
			pe.except = append(pe.except, x)
		}
	}
	return pe, nil
}

// portSets translates a rule's ports: numbers and ranges (endPort)
// grouped by protocol, and the named ports. No ports is any protocol and
// port.
func (c *compiler) portSets(np *networkingv1.NetworkPolicy, field string, in []networkingv1.NetworkPolicyPort) ([]portSet, []namedPort) {
	if len(in) == 0 {
		return []portSet{{all: true}}, nil
	}
	var sets []portSet
	var names []namedPort
	byProto := map[uint8]int{} // index in sets
	for i, p := range in {
		where := fmt.Sprintf("%s[%d]", field, i)
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		num, ok := protocols[proto]
		if !ok {
			c.problem(np, "%s: protocol %q is not TCP, UDP or SCTP; the port is left out", where, proto)
			continue
		}
		j, seen := byProto[num]
		if !seen {
			j = len(sets)
			byProto[num] = j
			sets = append(sets, portSet{proto: num})
		}
		switch {
		case p.Port == nil:
			sets[j].all = true
		case p.Port.Type == intstr.String:
			key := NamedPortKey(proto, p.Port.StrVal)
			c.used[key] = true
			names = append(names, namedPort{proto: num, key: key})
		default:
			first, last := p.Port.IntVal, p.Port.IntVal
			if p.EndPort != nil {
				last = *p.EndPort
			}
			if first < 1 || last > 65535 || last < first {
				c.problem(np, "%s: ports %d to %d are not a range of ports; the port is left out", where, first, last)
				continue
			}
			sets[j].ranges = append(sets[j].ranges, policy.PortRange{First: uint16(first), Last: uint16(last)})
		}
	}
	// A protocol with only named ports has no numbered set of its own.
	out := sets[:0]
	for _, s := range sets {
		if s.all || len(s.ranges) > 0 {
			out = append(out, s)
		}
	}
	return out, names
}

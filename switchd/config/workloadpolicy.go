package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
)

var wpPath = switchdPath.child("workload-policy")

// workloadPolicy translates /switchd/workload-policy (policies and
// network sets) and /switchd/failsafe into policy.Intent. Selectors are parsed here (with
// policy.ParseSelector), so a selector that would not compile is refused
// by check and reload alike, at its leaf.
func (t *translator) workloadPolicy(sd *oc.Switchd, in *Intent) {
	if sd == nil {
		return
	}
	t.endpointLabels(sd)
	out := &in.Policy
	if wp := sd.WorkloadPolicy; wp != nil {
		if wp.DefaultAction == oc.Switchd_DefaultAction_DENY {
			out.Default = policy.Deny
		}
		for _, name := range sortedKeys(wp.Policy) {
			if p, ok := t.workloadPolicyEntry(wp.Policy[name], name); ok {
				out.Policies = append(out.Policies, p)
			}
		}
		sort.SliceStable(out.Policies, func(i, j int) bool { return out.Policies[i].Order < out.Policies[j].Order })
		out.NetworkSets = t.networkSets(wp)
		in.Groups = t.groups(wp)
	}
	if fs := sd.Failsafe; fs != nil {
		cfg := switchdPath.child("failsafe").child("config")
		out.FailsafeExtra.TCP = t.failsafePorts(fs.TcpPort, cfg.child("tcp-port"))
		out.FailsafeExtra.UDP = t.failsafePorts(fs.UdpPort, cfg.child("udp-port"))
	}
}

// endpointLabels checks configured endpoints' labels against the syntax
// selectors can match, so no label is silently unselectable.
func (t *translator) endpointLabels(sd *oc.Switchd) {
	for _, name := range sortedKeys(sd.Endpoint) {
		ep := sd.Endpoint[name]
		for _, k := range sortedKeys(ep.Label) {
			if err := policy.CheckLabel(k, ep.Label[k].GetValue()); err != nil {
				p := switchdPath.child("endpoints").entry("endpoint", []kv{{"name", name}}).
					child("labels").entry("label", []kv{{"key", k}}).child("config")
				t.add(p, err.Error())
			}
		}
	}
}

func (t *translator) failsafePorts(ports []uint16, p path) []uint16 {
	var out []uint16
	for _, port := range ports {
		if port == 0 {
			t.add(p, "port 0 is not a port")
			continue
		}
		out = append(out, port)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (t *translator) workloadPolicyEntry(wp *oc.Switchd_WorkloadPolicy_Policy, name string) (policy.Policy, bool) {
	before := len(t.list)
	pp := wpPath.child("policies").entry("policy", []kv{{"name", name}})
	cfg := pp.child("config")
	pol := policy.Policy{Name: name, Order: wp.GetOrder()}
	if wp.Selector == nil {
		t.add(cfg.child("selector"), "a policy needs a selector (all() selects every endpoint)")
	} else if sel, err := policy.ParseSelector(*wp.Selector); err != nil {
		t.add(cfg.child("selector"), err.Error())
	} else {
		pol.Selector = sel
	}
	if len(wp.Direction) == 0 {
		// Kubernetes' policyTypes default.
		pol.SelectsIngress, pol.SelectsEgress = true, len(wp.EgressRule) > 0
	}
	for _, d := range wp.Direction {
		switch d {
		case oc.Switchd_PolicyDirection_INGRESS:
			pol.SelectsIngress = true
		case oc.Switchd_PolicyDirection_EGRESS:
			pol.SelectsEgress = true
		}
	}
	for _, seq := range sortedKeys(wp.IngressRule) {
		r := wp.IngressRule[seq]
		raw := rawRule{seq, r.Action, r.Protocol, anys(r.SourcePort), anys(r.DestinationPort), r.PeerSelector, r.PeerCidr, r.PeerExcept}
		rp := pp.child("ingress-rules").entry("ingress-rule", []kv{{"sequence-id", strconv.FormatUint(uint64(seq), 10)}})
		pol.Ingress = append(pol.Ingress, t.rule(raw, rp.child("config")))
	}
	for _, seq := range sortedKeys(wp.EgressRule) {
		r := wp.EgressRule[seq]
		raw := rawRule{seq, r.Action, r.Protocol, anys(r.SourcePort), anys(r.DestinationPort), r.PeerSelector, r.PeerCidr, r.PeerExcept}
		rp := pp.child("egress-rules").entry("egress-rule", []kv{{"sequence-id", strconv.FormatUint(uint64(seq), 10)}})
		pol.Egress = append(pol.Egress, t.rule(raw, rp.child("config")))
	}
	return pol, len(t.list) == before
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// rawRule is an ingress or an egress rule as generated (the two lists are
// distinct types of one shape), with its unions as their member values.
type rawRule struct {
	seq      uint32
	action   oc.E_Switchd_PolicyAction
	proto    any // nil, oc.E_Switchd_IpProtocol_Enum or oc.UnionUint8
	src, dst []any
	peerSel  *string
	cidrs    []string
	except   []string
}

var protoNumbers = map[oc.E_Switchd_IpProtocol_Enum]uint8{
	oc.Switchd_IpProtocol_Enum_TCP:    policy.ProtoTCP,
	oc.Switchd_IpProtocol_Enum_UDP:    policy.ProtoUDP,
	oc.Switchd_IpProtocol_Enum_ICMP:   policy.ProtoICMP,
	oc.Switchd_IpProtocol_Enum_ICMPV6: policy.ProtoICMPv6,
	oc.Switchd_IpProtocol_Enum_SCTP:   policy.ProtoSCTP,
}

// rule checks and translates one rule; cfg is its config container.
func (t *translator) rule(r rawRule, cfg path) policy.Rule {
	out := policy.Rule{Seq: r.seq}
	switch r.action {
	case oc.Switchd_PolicyAction_ALLOW:
		out.Action = policy.Allow
	case oc.Switchd_PolicyAction_DENY:
		out.Action = policy.Deny
	case oc.Switchd_PolicyAction_LOG:
		out.Action = policy.Log
	default:
		t.add(cfg.child("action"), "a rule needs an action (ALLOW, DENY or LOG)")
	}
	protoName := ""
	switch v := r.proto.(type) {
	case oc.E_Switchd_IpProtocol_Enum:
		out.Protocol, protoName = protoNumbers[v], v.String()
	case oc.UnionUint8:
		if v == 0 {
			t.add(cfg.child("protocol"), "protocol 0: leave protocol out to match any")
		}
		out.Protocol, protoName = uint8(v), fmt.Sprintf("protocol %d", v)
	}
	out.SrcPorts = t.ports(r.src, out.Protocol, protoName, cfg.child("source-port"))
	out.DstPorts = t.ports(r.dst, out.Protocol, protoName, cfg.child("destination-port"))
	if r.peerSel != nil {
		if sel, err := policy.ParseSelector(*r.peerSel); err != nil {
			t.add(cfg.child("peer-selector"), err.Error())
		} else {
			out.Peer.Selector = &sel
		}
	}
	// ICMP and ICMPv6 each belong to one family: a prefix of the other
	// could never match.
	family := func(pfx netip.Prefix, p path) bool {
		switch {
		case out.Protocol == policy.ProtoICMP && pfx.Addr().Is6():
			t.add(p, fmt.Sprintf("%v is IPv6 but the rule's protocol ICMP is IPv4 only (ICMPV6 is IPv6's)", pfx))
		case out.Protocol == policy.ProtoICMPv6 && pfx.Addr().Is4():
			t.add(p, fmt.Sprintf("%v is IPv4 but the rule's protocol ICMPV6 is IPv6 only (ICMP is IPv4's)", pfx))
		default:
			return true
		}
		return false
	}
	for _, s := range r.cidrs {
		p := cfg.child("peer-cidr")
		if pfx, ok := t.prefix(s, p); ok && family(pfx, p) && !slices.Contains(out.Peer.CIDRs, pfx) {
			out.Peer.CIDRs = append(out.Peer.CIDRs, pfx)
		}
	}
	for _, s := range r.except {
		p := cfg.child("peer-except")
		pfx, ok := t.prefix(s, p)
		if !ok || !family(pfx, p) {
			continue
		}
		if len(r.cidrs) == 0 {
			t.add(p, "peer-except without peer-cidr: an exception needs a range to be taken from")
			continue
		}
		within := slices.ContainsFunc(out.Peer.CIDRs, func(c netip.Prefix) bool {
			return c.Bits() <= pfx.Bits() && c.Contains(pfx.Addr())
		})
		if !within {
			t.add(p, fmt.Sprintf("%v is not within any peer-cidr (%v)", pfx, joinPrefixes(out.Peer.CIDRs)))
			continue
		}
		if !slices.Contains(out.Peer.Except, pfx) {
			out.Peer.Except = append(out.Peer.Except, pfx)
		}
	}
	slices.SortFunc(out.Peer.CIDRs, comparePrefix)
	slices.SortFunc(out.Peer.Except, comparePrefix)
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// ports translates a port leaf-list: ports and "first..last" ranges, only
// for a protocol with ports.
func (t *translator) ports(vals []any, proto uint8, protoName string, p path) []policy.PortRange {
	if len(vals) == 0 {
		return nil
	}
	if !policy.HasPorts(proto) {
		if proto == 0 {
			t.add(p, "ports need a protocol with ports (TCP, UDP or SCTP)")
		} else {
			t.add(p, fmt.Sprintf("%s has no ports (TCP, UDP and SCTP do)", protoName))
		}
		return nil
	}
	var out []policy.PortRange
	for _, v := range vals {
		var r policy.PortRange
		switch v := v.(type) {
		case oc.UnionUint16:
			r = policy.PortRange{First: uint16(v), Last: uint16(v)}
		case oc.UnionString:
			lo, hi, _ := strings.Cut(string(v), "..") // the schema's pattern
			a, err1 := strconv.ParseUint(lo, 10, 16)
			b, err2 := strconv.ParseUint(hi, 10, 16)
			if err1 != nil || err2 != nil {
				t.add(p, fmt.Sprintf("port range %q: ports are 0 to 65535", string(v)))
				continue
			}
			if a > b {
				t.add(p, fmt.Sprintf("port range %q: the first port is after the last", string(v)))
				continue
			}
			r = policy.PortRange{First: uint16(a), Last: uint16(b)}
		default:
			continue
		}
		if r.First == 0 {
			t.add(p, "port 0 is not a port")
			continue
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b policy.PortRange) int {
		if a.First != b.First {
			return int(a.First) - int(b.First)
		}
		return int(a.Last) - int(b.Last)
	})
	return out
}

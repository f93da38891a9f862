package config

import (
	"strings"
	"sync"
)

// supportedLeaves lists every config leaf switchd applies, by schema path
// (no keys, no module prefixes). A leaf of the schema that is not here is
// refused with "not supported by switchd" rather than accepted and
// ignored: a user who sets an MTU or a route-flap-damping knob must learn
// that it does nothing. A leaf added here must be read by Translate (or
// be a list key, a description, or structure other leaves need).
//
// Prefix limits and ebgp-multihop are read from the neighbor or else its
// peer group (neighborLimits). prefix-limit's restart-timer is not in the
// schema switchd is generated from.
const supportedLeaves = `
/network-instances/network-instance/config/name
/network-instances/network-instance/config/type
/network-instances/network-instance/tables/table/config/protocol
/network-instances/network-instance/tables/table/config/address-family
/network-instances/network-instance/table-connections/table-connection/config/src-protocol
/network-instances/network-instance/table-connections/table-connection/config/dst-protocol
/network-instances/network-instance/table-connections/table-connection/config/address-family
/network-instances/network-instance/protocols/protocol/config/identifier
/network-instances/network-instance/protocols/protocol/config/name

/network-instances/network-instance/protocols/protocol/static-routes/static/config/prefix
/network-instances/network-instance/protocols/protocol/static-routes/static/config/description
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/config/index
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/config/next-hop
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/config/metric
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/enable-bfd/config/enabled
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/enable-bfd/config/desired-minimum-tx-interval
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/enable-bfd/config/required-minimum-receive
/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/enable-bfd/config/detection-multiplier
/network-instances/network-instance/protocols/protocol/local-aggregates/aggregate/config/prefix
/network-instances/network-instance/protocols/protocol/local-aggregates/aggregate/config/discard
/network-instances/network-instance/protocols/protocol/local-aggregates/aggregate/config/description

/network-instances/network-instance/protocols/protocol/bgp/global/config/as
/network-instances/network-instance/protocols/protocol/bgp/global/config/router-id
/network-instances/network-instance/protocols/protocol/bgp/global/use-multiple-paths/config/enabled
/network-instances/network-instance/protocols/protocol/bgp/global/use-multiple-paths/ebgp/config/allow-multiple-as
/network-instances/network-instance/protocols/protocol/bgp/global/use-multiple-paths/ebgp/config/maximum-paths
/network-instances/network-instance/protocols/protocol/bgp/global/afi-safis/afi-safi/config/afi-safi-name
/network-instances/network-instance/protocols/protocol/bgp/global/afi-safis/afi-safi/config/enabled
/network-instances/network-instance/protocols/protocol/bgp/global/graceful-restart/config/enabled
/network-instances/network-instance/protocols/protocol/bgp/global/graceful-restart/config/helper-only
/network-instances/network-instance/protocols/protocol/bgp/global/graceful-restart/config/restart-time
/network-instances/network-instance/protocols/protocol/bgp/global/graceful-restart/config/stale-routes-time

/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/config/peer-group-name
/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/config/description
/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/config/peer-as
/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/config/local-as
/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/config/auth-password
/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/config/membership-routes
/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/NEIGHBOR

/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/neighbor-address
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/description
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/peer-as
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/local-as
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/auth-password
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/peer-group
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/enabled
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/config/membership-routes
/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/NEIGHBOR
/network-instances/network-instance/protocols/protocol/bgp/interface-neighbors/interface-neighbor/config/interface
/network-instances/network-instance/protocols/protocol/bgp/interface-neighbors/interface-neighbor/config/peer-group
/network-instances/network-instance/protocols/protocol/bgp/interface-neighbors/interface-neighbor/config/peer-as
/network-instances/network-instance/protocols/protocol/bgp/interface-neighbors/interface-neighbor/config/enabled
/network-instances/network-instance/protocols/protocol/bgp/interface-neighbors/interface-neighbor/config/description

/routing-policy/defined-sets/prefix-sets/prefix-set/config/name
/routing-policy/defined-sets/prefix-sets/prefix-set/config/mode
/routing-policy/defined-sets/prefix-sets/prefix-set/prefixes/prefix/config/ip-prefix
/routing-policy/defined-sets/prefix-sets/prefix-set/prefixes/prefix/config/masklength-range
/routing-policy/policy-definitions/policy-definition/config/name
/routing-policy/policy-definitions/policy-definition/statements/statement/config/name
/routing-policy/policy-definitions/policy-definition/statements/statement/conditions/match-prefix-set/config/prefix-set
/routing-policy/policy-definitions/policy-definition/statements/statement/conditions/match-prefix-set/config/match-set-options
/routing-policy/policy-definitions/policy-definition/statements/statement/actions/config/policy-result

/switchd/config/state-dir
/switchd/config/ecmp-hash-policy
/switchd/config/resilient-ecmp-buckets
/switchd/metrics/config/enabled
/switchd/metrics/config/address
/switchd/kubernetes/config/enabled
/switchd/kubernetes/config/kubeconfig
/switchd/kubernetes/config/node-name
/switchd/ipam/config/static-prefix
/switchd/ipam/pools/pool/config/prefix
/switchd/ipam/pools/pool/config/block-length
/switchd/endpoints/endpoint/config/name
/switchd/endpoints/endpoint/config/kind
/switchd/endpoints/endpoint/config/interface
/switchd/endpoints/endpoint/config/ipv4-address
/switchd/endpoints/endpoint/config/ipv6-address
/switchd/endpoints/endpoint/config/mac
/switchd/endpoints/endpoint/labels/label/config/key
/switchd/endpoints/endpoint/labels/label/config/value
/switchd/workload-policy/config/default-action
/switchd/workload-policy/policies/policy/config/name
/switchd/workload-policy/policies/policy/config/order
/switchd/workload-policy/policies/policy/config/selector
/switchd/workload-policy/policies/policy/config/direction
/switchd/workload-policy/policies/policy/RULE
/switchd/workload-policy/network-sets/network-set/config/name
/switchd/workload-policy/network-sets/network-set/config/prefix
/switchd/workload-policy/network-sets/network-set/labels/label/config/key
/switchd/workload-policy/network-sets/network-set/labels/label/config/value
/switchd/workload-policy/groups/group/config/name
/switchd/workload-policy/groups/group/config/id
/switchd/workload-policy/groups/group/config/selector
/switchd/failsafe/config/tcp-port
/switchd/failsafe/config/udp-port

/system/grpc-servers/grpc-server/config/name
/system/grpc-servers/grpc-server/config/enable
/system/grpc-servers/grpc-server/config/port
/system/grpc-servers/grpc-server/config/services
/system/grpc-servers/grpc-server/config/listen-addresses
/system/grpc-servers/grpc-server/config/network-instance
/system/grpc-servers/grpc-server/config/transport-security
/system/grpc-servers/grpc-server/config/certificate-id
/system/grpc-servers/grpc-server/config/metadata-authentication
/system/aaa/authentication/users/user/config/username
/system/aaa/authentication/users/user/config/password
/system/aaa/authentication/users/user/config/password-hashed
/system/aaa/authentication/users/user/config/role

/bfd/interfaces/interface/config/id
/bfd/interfaces/interface/config/enabled
/bfd/interfaces/interface/config/desired-minimum-tx-interval
/bfd/interfaces/interface/config/required-minimum-receive
/bfd/interfaces/interface/config/detection-multiplier
/bfd/interfaces/interface/interface-ref/config/interface
/bfd/interfaces/interface/interface-ref/config/subinterface
/interfaces/interface/config/name
/interfaces/interface/config/type
/interfaces/interface/config/description
/interfaces/interface/config/enabled
/interfaces/interface/config/mtu
/interfaces/interface/subinterfaces/subinterface/config/index
/interfaces/interface/subinterfaces/subinterface/ipv4/addresses/address/config/ip
/interfaces/interface/subinterfaces/subinterface/ipv4/addresses/address/config/prefix-length
/interfaces/interface/subinterfaces/subinterface/ipv6/addresses/address/config/ip
/interfaces/interface/subinterfaces/subinterface/ipv6/addresses/address/config/prefix-length

/acl/acl-sets/acl-set/config/name
/acl/acl-sets/acl-set/config/type
/acl/acl-sets/acl-set/config/description
/acl/acl-sets/acl-set/acl-entries/acl-entry/config/sequence-id
/acl/acl-sets/acl-set/acl-entries/acl-entry/config/description
/acl/acl-sets/acl-set/acl-entries/acl-entry/IPV4
/acl/acl-sets/acl-set/acl-entries/acl-entry/IPV6
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/source-port
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/source-port-set
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/destination-port
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/destination-port-set
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/detail-mode
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/explicit-detail-match-mode
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/explicit-tcp-flags
/acl/acl-sets/acl-set/acl-entries/acl-entry/transport/config/builtin-detail
/acl/acl-sets/acl-set/acl-entries/acl-entry/actions/config/forwarding-action
/acl/acl-sets/acl-set/acl-entries/acl-entry/actions/config/log-action
/acl/interfaces/interface/config/id
/acl/interfaces/interface/ingress-acl-sets/ingress-acl-set/config/set-name
/acl/interfaces/interface/ingress-acl-sets/ingress-acl-set/config/type
/acl/interfaces/interface/egress-acl-sets/egress-acl-set/config/set-name
/acl/interfaces/interface/egress-acl-sets/egress-acl-set/config/type
/defined-sets/ipv4-prefix-sets/ipv4-prefix-set/config/name
/defined-sets/ipv4-prefix-sets/ipv4-prefix-set/config/description
/defined-sets/ipv4-prefix-sets/ipv4-prefix-set/config/prefix
/defined-sets/ipv6-prefix-sets/ipv6-prefix-set/config/name
/defined-sets/ipv6-prefix-sets/ipv6-prefix-set/config/description
/defined-sets/ipv6-prefix-sets/ipv6-prefix-set/config/prefix
/defined-sets/port-sets/port-set/config/name
/defined-sets/port-sets/port-set/config/description
/defined-sets/port-sets/port-set/config/port
`

// aclL3Leaves are supported alike under an ACL entry's ipv4 and ipv6
// containers (IPV4, IPV6 above), relative to the container.
const aclL3Leaves = `
config/source-address
config/source-address-prefix-set
config/destination-address
config/destination-address-prefix-set
config/dscp
config/dscp-set
config/protocol
config/hop-limit
`

// ruleLeaves are supported alike under a workload policy's ingress and
// egress rules (RULE above), relative to the rule.
const ruleLeaves = `
config/sequence-id
config/action
config/protocol
config/source-port
config/destination-port
config/peer-selector
config/peer-cidr
config/peer-except
`

// neighborLeaves are supported alike under a neighbor and a peer group
// (NEIGHBOR above), relative to it.
const neighborLeaves = `
timers/config/connect-retry
timers/config/hold-time
timers/config/keepalive-interval
timers/config/minimum-advertisement-interval
transport/config/local-address
transport/config/passive-mode
graceful-restart/config/enabled
graceful-restart/config/helper-only
graceful-restart/config/restart-time
graceful-restart/config/stale-routes-time
apply-policy/config/import-policy
apply-policy/config/export-policy
apply-policy/config/default-import-policy
apply-policy/config/default-export-policy
afi-safis/afi-safi/config/afi-safi-name
afi-safis/afi-safi/config/enabled
afi-safis/afi-safi/ipv4-unicast/prefix-limit/config/max-prefixes
afi-safis/afi-safi/ipv4-unicast/prefix-limit/config/prevent-teardown
afi-safis/afi-safi/ipv4-unicast/prefix-limit/config/warning-threshold-pct
afi-safis/afi-safi/ipv6-unicast/prefix-limit/config/max-prefixes
afi-safis/afi-safi/ipv6-unicast/prefix-limit/config/prevent-teardown
afi-safis/afi-safi/ipv6-unicast/prefix-limit/config/warning-threshold-pct
ebgp-multihop/config/enabled
ebgp-multihop/config/multihop-ttl
enable-bfd/config/enabled
enable-bfd/config/desired-minimum-tx-interval
enable-bfd/config/required-minimum-receive
enable-bfd/config/detection-multiplier
`

// unsupportedHints say what to do instead, for nodes users reach for.
var unsupportedHints = map[string]string{
	"/interfaces":                       "switchd applies an interface's enabled, mtu, description and type, and the IPv4 and IPv6 addresses (ip, prefix-length) of its subinterface 0",
	"/interfaces/interface/config/tpid": "VLANs are not supported: switchd routes on the interface itself (subinterface 0)",
	"/network-instances/network-instance/protocols/protocol/bgp/global/apply-policy":                                    "apply policies per neighbor or peer group",
	"/network-instances/network-instance/protocols/protocol/bgp/neighbors/neighbor/afi-safis/afi-safi/apply-policy":     "apply policies to the neighbor",
	"/network-instances/network-instance/protocols/protocol/bgp/peer-groups/peer-group/afi-safis/afi-safi/apply-policy": "apply policies to the peer group",
	"/network-instances/network-instance/protocols/protocol/static-routes/static/next-hops/next-hop/interface-ref":      "give the gateway address",
	"/routing-policy/policy-definitions/policy-definition/statements/statement/conditions":                              "only match-prefix-set conditions are supported",
	"/routing-policy/policy-definitions/policy-definition/statements/statement/actions":                                 "only policy-result actions are supported",
	"/routing-policy/defined-sets":                                         "only prefix sets are supported",
	"/acl/interfaces/interface/interface-ref":                              "the interface's id is its kernel name, which is also its name under /interfaces",
	"/acl/acl-sets/acl-set/acl-entries/acl-entry/l2":                       "switchd matches IP packets: use ipv4, ipv6 and transport",
	"/defined-sets/ipv4-prefix-sets/ipv4-prefix-set/config/exclude-prefix": "list the prefixes to match, or put an entry for the excluded ones first",
	"/defined-sets/ipv6-prefix-sets/ipv6-prefix-set/config/exclude-prefix": "list the prefixes to match, or put an entry for the excluded ones first",
	"/defined-sets/port-sets/port-set/config/exclude-port":                 "list the ports to match, or put an entry for the excluded ones first",
}

type supportSet struct {
	leaves map[string]bool // supported leaves
	inner  map[string]bool // containers and lists with a supported leaf below
}

var supported = sync.OnceValue(func() supportSet {
	s := supportSet{leaves: map[string]bool{}, inner: map[string]bool{}}
	for _, l := range strings.Fields(supportedLeaves) {
		prefixes := []string{l}
		if base, ok := strings.CutSuffix(l, "/NEIGHBOR"); ok {
			prefixes = nil
			for _, n := range strings.Fields(neighborLeaves) {
				prefixes = append(prefixes, base+"/"+n)
			}
		}
		if base, ok := strings.CutSuffix(l, "/RULE"); ok {
			prefixes = nil
			for _, r := range strings.Fields(ruleLeaves) {
				prefixes = append(prefixes, base+"/ingress-rules/ingress-rule/"+r, base+"/egress-rules/egress-rule/"+r)
			}
		}
		if base, ok := strings.CutSuffix(l, "/IPV4"); ok {
			prefixes = aclL3(base + "/ipv4")
		}
		if base, ok := strings.CutSuffix(l, "/IPV6"); ok {
			prefixes = aclL3(base + "/ipv6")
		}
		for _, p := range prefixes {
			s.leaves[p] = true
			for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
				s.inner[p[:i]] = true
			}
		}
	}
	return s
})

func aclL3(base string) []string {
	var out []string
	for _, l := range strings.Fields(aclL3Leaves) {
		out = append(out, base+"/"+l)
	}
	return out
}

// unsupported says why the node at schema path sp is refused, or "" if
// it is supported (a supported leaf, or a node with one below it).
func unsupported(sp string) string {
	s := supported()
	if s.leaves[sp] || s.inner[sp] {
		return ""
	}
	reason := "not supported by switchd"
	for p := sp; p != ""; p = p[:strings.LastIndexByte(p, '/')] {
		if h, ok := unsupportedHints[p]; ok {
			return reason + ": " + h
		}
	}
	return reason
}

package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/switchd/switchd/policy"
)

// aclDoc is examples/acl.yaml decoded, for tests to break.
func aclDoc(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../examples/acl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// aclEntry returns entry i of the example's ACL set s (0: ACL_IPV4, 1:
// ACL_IPV6).
func aclEntry(t *testing.T, m map[string]any, s, i int) map[string]any {
	return at(t, m, "openconfig-acl:acl", "acl-sets", "acl-set", s, "acl-entries", "acl-entry", i)
}

// aclExample is what examples/acl.yaml translates to (TestExamples).
func aclExample() policy.ACLIntent {
	ssh := policy.PortMatch{Ranges: []policy.PortRange{{First: 22, Last: 22}}}
	return policy.ACLIntent{
		Sets: []policy.ACLSet{{
			Name: "host1-in", Type: policy.ACLIPv4,
			Entries: []policy.ACLEntry{{
				Seq: 10, Family: policy.ACLIPv4, Src: policy.AddrMatch{Set: "mgmt"}, Protocol: policy.ProtoTCP,
				DstPorts: policy.PortMatch{Set: "ssh"}, Action: policy.ACLAccept,
			}, {
				Seq: 20, Family: policy.ACLIPv4, Src: policy.AddrMatch{Prefix: netip.MustParsePrefix("10.1.0.0/16")},
				Protocol: policy.ProtoTCP, DstPorts: ssh, Action: policy.ACLDrop, Log: true,
			}},
		}, {
			Name: "host1-in", Type: policy.ACLIPv6,
			Entries: []policy.ACLEntry{{
				Seq: 10, Family: policy.ACLIPv6, Src: policy.AddrMatch{Set: "mgmt"}, Protocol: policy.ProtoTCP,
				DstPorts: policy.PortMatch{Set: "ssh"}, Action: policy.ACLAccept,
			}, {
				Seq: 20, Family: policy.ACLIPv6, Src: policy.AddrMatch{Prefix: netip.MustParsePrefix("fd00:1::/48")},
				Protocol: policy.ProtoTCP, DstPorts: ssh, Action: policy.ACLDrop, Log: true,
			}},
		}},
		Defined: policy.DefinedSets{
			IPv4:  []policy.PrefixSet{{Name: "mgmt", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}},
			IPv6:  []policy.PrefixSet{{Name: "mgmt", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::/48")}}},
			Ports: []policy.PortSet{{Name: "ssh", Ranges: []policy.PortRange{{First: 22, Last: 22}}}},
		},
		Bindings: []policy.ACLBinding{{
			Interface: "host1",
			Ingress:   []policy.ACLSetKey{{Name: "host1-in", Type: policy.ACLIPv4}, {Name: "host1-in", Type: policy.ACLIPv6}},
		}},
	}
}

// TestACLMatches reads the matches the example does not use: mixed sets,
// DSCP, hop limit, port ranges, TCP flags, REJECT, egress bindings.
func TestACLMatches(t *testing.T) {
	m := aclDoc(t)
	sets := at(t, m, "openconfig-acl:acl", "acl-sets")
	sets["acl-set"] = append(sets["acl-set"].([]any), map[string]any{
		"name": "mixed", "type": "openconfig-acl:ACL_MIXED",
		"config": map[string]any{"name": "mixed", "type": "openconfig-acl:ACL_MIXED"},
		"acl-entries": map[string]any{"acl-entry": []any{
			map[string]any{"sequence-id": 5, "config": map[string]any{"sequence-id": 5},
				"ipv6":    map[string]any{"config": map[string]any{"dscp-set": []any{46, 10, 46}, "hop-limit": 255, "protocol": "openconfig-packet-match-types:IP_ICMP"}},
				"actions": map[string]any{"config": map[string]any{"forwarding-action": "openconfig-acl:ACCEPT"}}},
			map[string]any{"sequence-id": 7, "config": map[string]any{"sequence-id": 7},
				"ipv4": map[string]any{"config": map[string]any{"protocol": 6, "dscp": 8}},
				"transport": map[string]any{"config": map[string]any{"source-port": "1024..65535",
					"detail-mode": "EXPLICIT", "explicit-tcp-flags": []any{"openconfig-packet-match-types:TCP_SYN", "openconfig-packet-match-types:TCP_FIN"}, "explicit-detail-match-mode": "ALL"}},
				"actions": map[string]any{"config": map[string]any{"forwarding-action": "openconfig-acl:REJECT"}}},
			map[string]any{"sequence-id": 8, "config": map[string]any{"sequence-id": 8},
				"ipv4":      map[string]any{"config": map[string]any{"protocol": "openconfig-packet-match-types:IP_TCP"}},
				"transport": map[string]any{"config": map[string]any{"detail-mode": "BUILTIN", "builtin-detail": "TCP_INITIAL"}},
				"actions":   map[string]any{"config": map[string]any{"forwarding-action": "openconfig-acl:DROP"}}},
			map[string]any{"sequence-id": 9, "config": map[string]any{"sequence-id": 9},
				"actions": map[string]any{"config": map[string]any{"forwarding-action": "openconfig-acl:DROP"}}},
		}},
	})
	ifs := at(t, m, "openconfig-acl:acl", "interfaces")
	ifs["interface"] = append(ifs["interface"].([]any), map[string]any{
		"id": "swp1", "config": map[string]any{"id": "swp1"},
		"egress-acl-sets": map[string]any{"egress-acl-set": []any{map[string]any{
			"set-name": "mixed", "type": "openconfig-acl:ACL_MIXED",
			"config": map[string]any{"set-name": "mixed", "type": "openconfig-acl:ACL_MIXED"}}}},
	})
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	var mixed *policy.ACLSet
	for i := range in.ACL.Sets {
		if in.ACL.Sets[i].Type == policy.ACLMixed {
			mixed = &in.ACL.Sets[i]
		}
	}
	if mixed == nil {
		t.Fatalf("no mixed set in %+v", in.ACL.Sets)
	}
	hop := uint8(255)
	want := []policy.ACLEntry{{
		Seq: 5, Family: policy.ACLIPv6, DSCP: []uint8{10, 46}, HopLimit: &hop, Protocol: policy.ProtoICMPv6, Action: policy.ACLAccept,
	}, {
		Seq: 7, Family: policy.ACLIPv4, DSCP: []uint8{8}, Protocol: policy.ProtoTCP,
		SrcPorts: policy.PortMatch{Ranges: []policy.PortRange{{First: 1024, Last: 65535}}},
		TCPFlags: &policy.TCPFlagMatch{Mask: policy.TCPSyn | policy.TCPFin, Value: policy.TCPSyn | policy.TCPFin},
		Action:   policy.ACLReject,
	}, {
		Seq: 8, Family: policy.ACLIPv4, Protocol: policy.ProtoTCP,
		TCPFlags: &policy.TCPFlagMatch{Mask: policy.TCPSyn | policy.TCPAck, Value: policy.TCPSyn},
		Action:   policy.ACLDrop,
	}, {
		Seq: 9, Family: 0, Action: policy.ACLDrop,
	}}
	if diff := cmp.Diff(want, mixed.Entries, cmpOpts...); diff != "" {
		t.Errorf("mixed entries (-want +got):\n%s", diff)
	}
	wantB := policy.ACLBinding{Interface: "swp1", Egress: []policy.ACLSetKey{{Name: "mixed", Type: policy.ACLMixed}}}
	if diff := cmp.Diff(wantB, in.ACL.Bindings[1], cmpOpts...); diff != "" {
		t.Errorf("binding (-want +got):\n%s", diff)
	}
}

const (
	aclV4  = "/acl/acl-sets/acl-set[name=host1-in][type=ACL_IPV4]"
	aclV6  = "/acl/acl-sets/acl-set[name=host1-in][type=ACL_IPV6]"
	aclE10 = aclV4 + "/acl-entries/acl-entry[sequence-id=10]"
	aclE20 = aclV4 + "/acl-entries/acl-entry[sequence-id=20]"
	aclIf  = "/acl/interfaces/interface[id=host1]"
)

// TestACLRejects breaks examples/acl.yaml: each bad input is refused with
// its OpenConfig path and reason, and Parse gives no Intent (nothing is
// applied).
func TestACLRejects(t *testing.T) {
	cfg := func(m map[string]any, steps ...any) map[string]any {
		return at(t, m, append(steps, "config")...)
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name:   "port without protocol",
		break_: func(t *testing.T, m map[string]any) { delete(cfg(aclEntry(t, m, 0, 1), "ipv4"), "protocol") },
		path:   aclE20 + "/transport/config/destination-port",
		reason: "a port match needs protocol TCP, UDP or SCTP at ipv4/config/protocol (none is given)",
	}, {
		name: "port set with ICMP",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 0), "ipv4")["protocol"] = "openconfig-packet-match-types:IP_ICMP"
		},
		path:   aclE10 + "/transport/config/destination-port-set",
		reason: "a port match needs protocol TCP, UDP or SCTP at ipv4/config/protocol (it is 1)",
	}, {
		name: "port range without protocol in a mixed entry",
		break_: func(t *testing.T, m map[string]any) {
			e := aclEntry(t, m, 0, 1)
			delete(e, "ipv4")
			at(t, m, "openconfig-acl:acl", "acl-sets", "acl-set", 0)["type"] = "openconfig-acl:ACL_MIXED"
			at(t, m, "openconfig-acl:acl", "acl-sets", "acl-set", 0, "config")["type"] = "openconfig-acl:ACL_MIXED"
			cfg(e, "transport")["destination-port"] = "20..22"
			b := at(t, m, "openconfig-acl:acl", "interfaces", "interface", 0, "ingress-acl-sets", "ingress-acl-set", 0)
			b["type"] = "openconfig-acl:ACL_MIXED"
			cfg(b)["type"] = "openconfig-acl:ACL_MIXED"
		},
		path:   "/acl/acl-sets/acl-set[name=host1-in][type=ACL_MIXED]/acl-entries/acl-entry[sequence-id=20]/transport/config/destination-port",
		reason: "a port match needs protocol TCP, UDP or SCTP at ipv4/config/protocol (or ipv6/config/protocol) (none is given)",
	}, {
		name: "IPv6 prefix in an ACL_IPV4 set",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 1), "ipv4")["source-address"] = "fd00:1::/48"
		},
		path:   aclE20 + "/ipv4/config/source-address",
		reason: `invalid value "fd00:1::/48": not a valid ipv4-prefix`,
	}, {
		name: "ipv6 matches in an ACL_IPV4 set",
		break_: func(t *testing.T, m map[string]any) {
			e := aclEntry(t, m, 0, 1)
			e["ipv6"] = map[string]any{"config": map[string]any{"source-address": "fd00:1::/48", "protocol": 6}}
			delete(e, "ipv4")
		},
		path:   aclE20 + "/ipv6",
		reason: "ipv6 matches in an ACL_IPV4 set",
	}, {
		name: "ipv4 matches in an ACL_IPV6 set",
		break_: func(t *testing.T, m map[string]any) {
			e := aclEntry(t, m, 1, 1)
			e["ipv4"] = e["ipv6"]
			delete(e, "ipv6")
			cfg(e, "ipv4")["source-address"] = "10.1.0.0/16"
		},
		path:   aclV6 + "/acl-entries/acl-entry[sequence-id=20]/ipv4",
		reason: "ipv4 matches in an ACL_IPV6 set",
	}, {
		name: "IPv6 prefix in an IPv4 prefix set",
		break_: func(t *testing.T, m map[string]any) {
			cfg(m, "openconfig-defined-sets:defined-sets", "ipv4-prefix-sets", "ipv4-prefix-set", 0)["prefix"] = []any{"2001:db8::/32"}
		},
		path:   "/defined-sets/ipv4-prefix-sets/ipv4-prefix-set[name=mgmt]/config/prefix",
		reason: `not a valid ipv4-prefix`,
	}, {
		name: "unknown defined prefix set",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 0), "ipv4")["source-address-prefix-set"] = "mgmt2"
		},
		path:   aclE10 + "/ipv4/config/source-address-prefix-set",
		reason: `"mgmt2" refers to something that is not configured`,
	}, {
		name: "unknown defined port set",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 0), "transport")["destination-port-set"] = "sshd"
		},
		path:   aclE10 + "/transport/config/destination-port-set",
		reason: `"sshd" refers to something that is not configured`,
	}, {
		name: "binding to an ACL set of another type",
		break_: func(t *testing.T, m map[string]any) {
			addACLSet(t, m, "other", "ACL_MIXED")
			b := at(t, m, "openconfig-acl:acl", "interfaces", "interface", 0, "ingress-acl-sets", "ingress-acl-set", 1)
			b["type"] = "openconfig-acl:ACL_MIXED"
			cfg(b)["type"] = "openconfig-acl:ACL_MIXED"
		},
		path:   aclIf + "/ingress-acl-sets/ingress-acl-set[set-name=host1-in][type=ACL_MIXED]",
		reason: `no ACL set "host1-in" of type ACL_MIXED at /acl/acl-sets (there is one of type ACL_IPV4, ACL_IPV6)`,
	}, {
		name: "binding to an ACL set that does not exist",
		break_: func(t *testing.T, m map[string]any) {
			b := at(t, m, "openconfig-acl:acl", "interfaces", "interface", 0, "ingress-acl-sets", "ingress-acl-set", 1)
			b["set-name"] = "host2-in"
			cfg(b)["set-name"] = "host2-in"
		},
		path:   aclIf + "/ingress-acl-sets/ingress-acl-set[set-name=host2-in][type=ACL_IPV6]/config/set-name",
		reason: `"host2-in" refers to something that is not configured`,
	}, {
		name: "port range start after end",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 1), "transport")["destination-port"] = "23..22"
		},
		path:   aclE20 + "/transport/config/destination-port",
		reason: `port range "23..22" starts after it ends`,
	}, {
		name: "port range start after end in a port set",
		break_: func(t *testing.T, m map[string]any) {
			cfg(m, "openconfig-defined-sets:defined-sets", "port-sets", "port-set", 0)["port"] = []any{22, "9000..8000"}
		},
		path:   "/defined-sets/port-sets/port-set[name=ssh]/config/port",
		reason: `port range "9000..8000" starts after it ends`,
	}, {
		name: "TCP flags without protocol TCP",
		break_: func(t *testing.T, m map[string]any) {
			e := aclEntry(t, m, 0, 1)
			cfg(e, "ipv4")["protocol"] = "openconfig-packet-match-types:IP_UDP"
			tr := cfg(e, "transport")
			tr["detail-mode"] = "EXPLICIT"
			tr["explicit-tcp-flags"] = []any{"openconfig-packet-match-types:TCP_SYN"}
		},
		path:   aclE20 + "/transport/config/explicit-tcp-flags",
		reason: "a TCP flags match needs protocol TCP at ipv4/config/protocol (it is UDP)",
	}, {
		name: "builtin TCP flags without protocol",
		break_: func(t *testing.T, m map[string]any) {
			e := aclEntry(t, m, 0, 1)
			delete(cfg(e, "ipv4"), "protocol")
			tr := cfg(e, "transport")
			delete(tr, "destination-port")
			tr["detail-mode"] = "BUILTIN"
			tr["builtin-detail"] = "TCP_ESTABLISHED"
		},
		path:   aclE20 + "/transport/config/builtin-detail",
		reason: "a TCP flags match needs protocol TCP at ipv4/config/protocol (none is given)",
	}, {
		name: "TCP flags without detail-mode",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 1), "transport")["builtin-detail"] = "TCP_INITIAL"
		},
		path:   aclE20 + "/transport/config/detail-mode",
		reason: "need detail-mode",
	}, {
		name: "prefix with host bits",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 1), "ipv4")["source-address"] = "10.1.2.3/16"
		},
		path:   aclE20 + "/ipv4/config/source-address",
		reason: "prefix 10.1.2.3/16 has host bits set (did you mean 10.1.0.0/16?)",
	}, {
		name: "prefix and prefix set",
		break_: func(t *testing.T, m map[string]any) {
			cfg(aclEntry(t, m, 0, 0), "ipv4")["source-address"] = "10.0.0.0/8"
		},
		path:   aclE10 + "/ipv4/config/source-address-prefix-set",
		reason: "give source-address or source-address-prefix-set, not both",
	}, {
		name: "no forwarding action",
		break_: func(t *testing.T, m map[string]any) {
			delete(cfg(aclEntry(t, m, 0, 1), "actions"), "forwarding-action")
		},
		path:   aclE20 + "/actions/config/forwarding-action",
		reason: "an ACL entry needs a forwarding-action",
	}, {
		name: "L2 ACL set",
		break_: func(t *testing.T, m map[string]any) {
			addACLSet(t, m, "l2", "ACL_L2")
		},
		path:   "/acl/acl-sets/acl-set[name=l2][type=ACL_L2]/config/type",
		reason: "ACL_L2 sets are not supported by switchd",
	}, {
		name: "interface-ref",
		break_: func(t *testing.T, m map[string]any) {
			at(t, m, "openconfig-acl:acl", "interfaces", "interface", 0)["interface-ref"] = map[string]any{"config": map[string]any{"interface": "host1"}}
		},
		path:   aclIf + "/interface-ref",
		reason: "not supported by switchd: the interface's id is its kernel name",
	}, {
		name: "interface id no kernel name",
		break_: func(t *testing.T, m map[string]any) {
			i := at(t, m, "openconfig-acl:acl", "interfaces", "interface", 0)
			i["id"] = "Ethernet1/1"
			cfg(i)["id"] = "Ethernet1/1"
		},
		path:   "/acl/interfaces/interface[id=Ethernet1/1]/config/id",
		reason: `interface id "Ethernet1/1": contains '/'`,
	}, {
		name: "ACL set name too long for nftables",
		break_: func(t *testing.T, m map[string]any) {
			addACLSet(t, m, strings.Repeat("n", 201), "ACL_IPV4")
		},
		path:   "/acl/acl-sets/acl-set[name=" + strings.Repeat("n", 201) + "][type=ACL_IPV4]/config/name",
		reason: "name longer than 200 bytes",
	}, {
		name: "exclude-prefix",
		break_: func(t *testing.T, m map[string]any) {
			cfg(m, "openconfig-defined-sets:defined-sets", "ipv4-prefix-sets", "ipv4-prefix-set", 0)["exclude-prefix"] = []any{"192.0.2.1/32"}
		},
		path:   "/defined-sets/ipv4-prefix-sets/ipv4-prefix-set[name=mgmt]/config/exclude-prefix",
		reason: "not supported by switchd: list the prefixes to match",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := aclDoc(t)
			tc.break_(t, m)
			in, err := parseDoc(t, m)
			if err == nil {
				t.Fatalf("accepted; ACL intent %+v", in.ACL)
			}
			if in != nil {
				t.Errorf("Parse returned an Intent with its error")
			}
			var es Errors
			if !asErrors(err, &es) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%v", tc.path, tc.reason, err)
		})
	}
}

// addACLSet adds an ACL set without entries.
func addACLSet(t *testing.T, m map[string]any, name, typ string) {
	sets := at(t, m, "openconfig-acl:acl", "acl-sets")
	sets["acl-set"] = append(sets["acl-set"].([]any), map[string]any{
		"name": name, "type": "openconfig-acl:" + typ,
		"config": map[string]any{"name": name, "type": "openconfig-acl:" + typ}})
}

func asErrors(err error, es *Errors) bool {
	e, ok := err.(Errors)
	*es = e
	return ok
}

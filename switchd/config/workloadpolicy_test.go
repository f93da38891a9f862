package config

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/switchd/switchd/policy"
)

// policyDoc is examples/policy.yaml decoded, for tests to break.
func policyDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseRejectsWorkloadPolicy(t *testing.T) {
	const db = "/switchd/workload-policy/policies/policy[name=db]"
	const rule10 = db + "/ingress-rules/ingress-rule[sequence-id=10]"
	pol := func(t *testing.T, m map[string]any) map[string]any {
		return at(t, m, "switchd:switchd", "workload-policy", "policies", "policy", 0)
	}
	rule := func(t *testing.T, m map[string]any) map[string]any {
		return at(t, pol(t, m), "ingress-rules", "ingress-rule", 0, "config")
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name:   "selector does not parse",
		break_: func(t *testing.T, m map[string]any) { at(t, pol(t, m), "config")["selector"] = "role == db" },
		path:   db + "/config/selector",
		reason: `selector "role == db": column 9: expected a quoted value`,
	}, {
		name:   "no selector",
		break_: func(t *testing.T, m map[string]any) { delete(at(t, pol(t, m), "config"), "selector") },
		path:   db + "/config/selector",
		reason: "a policy needs a selector (all() selects every endpoint)",
	}, {
		name:   "peer selector does not parse",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["peer-selector"] = `role in {"web"` },
		path:   rule10 + "/config/peer-selector",
		reason: `selector "role in {\"web\"": column 15: expected , or }`,
	}, {
		name:   "port without protocol",
		break_: func(t *testing.T, m map[string]any) { delete(rule(t, m), "protocol") },
		path:   rule10 + "/config/destination-port",
		reason: "ports need a protocol with ports (TCP, UDP or SCTP)",
	}, {
		name:   "port with ICMP",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["protocol"] = "ICMP" },
		path:   rule10 + "/config/destination-port",
		reason: "ICMP has no ports (TCP, UDP and SCTP do)",
	}, {
		name: "source port with protocol number without ports",
		break_: func(t *testing.T, m map[string]any) {
			rule(t, m)["protocol"] = 47
			rule(t, m)["source-port"] = []any{1}
		},
		path:   rule10 + "/config/source-port",
		reason: "protocol 47 has no ports (TCP, UDP and SCTP do)",
	}, {
		name:   "unknown protocol name",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["protocol"] = "TPC" },
		path:   rule10 + "/config/protocol",
		reason: `invalid value: "TPC" is not a ip-protocol (ICMP, ICMPV6, SCTP, TCP, UDP, or a uint8)`,
	}, {
		name:   "port range backwards",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["destination-port"] = []any{"5432..5400"} },
		path:   rule10 + "/config/destination-port",
		reason: `port range "5432..5400": the first port is after the last`,
	}, {
		name:   "port range beyond 65535",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["destination-port"] = []any{"5432..70000"} },
		path:   rule10 + "/config/destination-port",
		reason: `port range "5432..70000": ports are 0 to 65535`,
	}, {
		name:   "no action",
		break_: func(t *testing.T, m map[string]any) { delete(rule(t, m), "action") },
		path:   rule10 + "/config/action",
		reason: "a rule needs an action (ALLOW, DENY or LOG)",
	}, {
		name: "IPv6 CIDR in an ICMP rule",
		break_: func(t *testing.T, m map[string]any) {
			r := rule(t, m)
			r["protocol"] = "ICMP"
			delete(r, "destination-port")
			r["peer-cidr"] = []any{"10.0.0.0/8", "fd00::/8"}
		},
		path:   rule10 + "/config/peer-cidr",
		reason: "fd00::/8 is IPv6 but the rule's protocol ICMP is IPv4 only (ICMPV6 is IPv6's)",
	}, {
		name:   "CIDR with host bits",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["peer-cidr"] = []any{"10.1.2.3/8"} },
		path:   rule10 + "/config/peer-cidr",
		reason: "prefix 10.1.2.3/8 has host bits set (did you mean 10.0.0.0/8?)",
	}, {
		name: "except outside the CIDR",
		break_: func(t *testing.T, m map[string]any) {
			rule(t, m)["peer-cidr"] = []any{"10.1.0.0/16"}
			rule(t, m)["peer-except"] = []any{"10.2.0.0/24"}
		},
		path:   rule10 + "/config/peer-except",
		reason: "10.2.0.0/24 is not within any peer-cidr (10.1.0.0/16)",
	}, {
		name: "except wider than the CIDR",
		break_: func(t *testing.T, m map[string]any) {
			rule(t, m)["peer-cidr"] = []any{"10.1.0.0/16"}
			rule(t, m)["peer-except"] = []any{"10.0.0.0/8"}
		},
		path:   rule10 + "/config/peer-except",
		reason: "10.0.0.0/8 is not within any peer-cidr (10.1.0.0/16)",
	}, {
		name:   "except without a CIDR",
		break_: func(t *testing.T, m map[string]any) { rule(t, m)["peer-except"] = []any{"10.2.0.0/24"} },
		path:   rule10 + "/config/peer-except",
		reason: "peer-except without peer-cidr: an exception needs a range to be taken from",
	}, {
		name: "duplicate sequence id",
		break_: func(t *testing.T, m map[string]any) {
			l := at(t, pol(t, m), "ingress-rules")
			l["ingress-rule"] = append(l["ingress-rule"].([]any), map[string]any{"sequence-id": 10, "config": map[string]any{"sequence-id": 10, "action": "DENY"}})
		},
		path:   rule10,
		reason: "duplicate",
	}, {
		name: "failsafe port 0",
		break_: func(t *testing.T, m map[string]any) {
			at(t, m, "switchd:switchd", "failsafe", "config")["udp-port"] = []any{0}
		},
		path:   "/switchd/failsafe/config/udp-port",
		reason: "port 0 is not a port",
	}, {
		name: "endpoint label a selector cannot match",
		break_: func(t *testing.T, m map[string]any) {
			at(t, m, "switchd:switchd")["endpoints"] = map[string]any{"endpoint": []any{map[string]any{
				"name": "vm1", "config": map[string]any{"name": "vm1"},
				"labels": map[string]any{"label": []any{map[string]any{"key": "role", "config": map[string]any{"key": "role", "value": "web server"}}}},
			}}}
		},
		path:   "/switchd/endpoints/endpoint[name=vm1]/labels/label[key=role]/config",
		reason: `label value "web server": ' ' is not allowed (letters, digits, '-', '_', '.')`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := policyDoc(t)
			tc.break_(t, m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			in, err := Parse(data, "policy.json")
			if err == nil {
				t.Fatalf("accepted: %+v", in.Policy)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("not Errors: %v", err)
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

func TestWorkloadPolicyTranslates(t *testing.T) {
	const doc = `
switchd:switchd:
  workload-policy:
    config: {default-action: DENY}
    policies:
      policy:
      - name: web
        config:
          name: web
          selector: 'tier == "front" && role in {"web", "api"}'
        egress-rules:
          egress-rule:
          - sequence-id: 20
            config: {sequence-id: 20, action: ALLOW, protocol: UDP, destination-port: [53]}
          - sequence-id: 10
            config:
              sequence-id: 10
              action: LOG
              protocol: 6
              source-port: ["1024..65535"]
              destination-port: [5432, "8000..8080", 5432]
              peer-cidr: [10.0.0.0/8, fd00::/8]
              peer-except: [10.9.0.0/16, fd00:9::/32]
      - name: db
        config:
          name: db
          order: 10
          selector: 'role == "db"'
          direction: [INGRESS, EGRESS]
        ingress-rules:
          ingress-rule:
          - sequence-id: 1
            config: {sequence-id: 1, action: DENY, protocol: ICMPV6, peer-selector: 'has(quarantine)'}
  failsafe:
    config: {tcp-port: [9100, 8080, 9100], udp-port: [4789]}
`
	in, err := Parse([]byte(doc), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	quarantine := policy.MustParseSelector("has(quarantine)")
	want := policy.Intent{
		Default: policy.Deny,
		Policies: []policy.Policy{{
			Name: "db", Order: 10, Selector: policy.MustParseSelector(`role == "db"`),
			SelectsIngress: true, SelectsEgress: true, // no egress rules: all egress denied
			Ingress: []policy.Rule{{Seq: 1, Action: policy.Deny, Protocol: policy.ProtoICMPv6, Peer: policy.Peer{Selector: &quarantine}}},
		}, {
			Name: "web", Order: 1000, Selector: policy.MustParseSelector(`role in {"api", "web"} && tier == "front"`),
			SelectsIngress: true, SelectsEgress: true, // Kubernetes' default: egress rules make it an egress policy
			Egress: []policy.Rule{{
				Seq: 10, Action: policy.Log, Protocol: policy.ProtoTCP,
				SrcPorts: []policy.PortRange{{First: 1024, Last: 65535}},
				DstPorts: []policy.PortRange{{First: 5432, Last: 5432}, {First: 8000, Last: 8080}},
				Peer: policy.Peer{
					CIDRs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
					Except: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("fd00:9::/32")},
				},
			}, {
				Seq: 20, Action: policy.Allow, Protocol: policy.ProtoUDP,
				DstPorts: []policy.PortRange{{First: 53, Last: 53}},
			}},
		}},
		FailsafeExtra: policy.Failsafe{TCP: []uint16{8080, 9100}, UDP: []uint16{4789}},
	}
	if diff := cmp.Diff(want, in.Policy, cmpOpts...); diff != "" {
		t.Errorf("Policy (-want +got):\n%s", diff)
	}
}

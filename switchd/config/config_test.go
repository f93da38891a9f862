package config

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/openconfig/ygot/ygot"
	"sigs.k8s.io/yaml"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
)

var cmpOpts = []cmp.Option{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{}), cmpopts.EquateEmpty(),
	// Ordered lists (policy statements) keep their entries unexported.
	cmp.Exporter(func(t reflect.Type) bool { return strings.HasSuffix(t.Name(), "_OrderedMap") })}

const (
	bgpP   = "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp"
	hostNb = bgpP + "/neighbors/neighbor[neighbor-address=10.2.1.1]"
)

// leafDoc is examples/leaf.json decoded, for tests to break.
func leafDoc(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../examples/leaf.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a decoded document: strings select members, ints list entries.
func at(t testing.TB, v any, steps ...any) map[string]any {
	t.Helper()
	for _, s := range steps {
		switch s := s.(type) {
		case string:
			v = v.(map[string]any)[s]
		case int:
			v = v.([]any)[s]
		}
		if v == nil {
			t.Fatalf("no %v in document", s)
		}
	}
	return v.(map[string]any)
}

func ni(t testing.TB, m map[string]any) map[string]any {
	return at(t, m, "openconfig-network-instance:network-instances", "network-instance", 0)
}

func bgpTree(t testing.TB, m map[string]any) map[string]any {
	return at(t, ni(t, m), "protocols", "protocol", 0, "bgp")
}

// neighbor returns the neighbor entry with the address.
func neighbor(t *testing.T, m map[string]any, addr string) map[string]any {
	for _, n := range at(t, bgpTree(t, m), "neighbors")["neighbor"].([]any) {
		if n.(map[string]any)["neighbor-address"] == addr {
			return n.(map[string]any)
		}
	}
	t.Fatalf("no neighbor %s", addr)
	return nil
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name:   "unknown leaf",
		break_: func(t *testing.T, m map[string]any) { at(t, neighbor(t, m, "10.2.1.1"), "config")["peer-asn"] = 1 },
		path:   hostNb + "/config/peer-asn",
		reason: `unknown element "peer-asn"`,
	}, {
		name:   "string where uint32 is",
		break_: func(t *testing.T, m map[string]any) { at(t, neighbor(t, m, "10.2.1.1"), "config")["peer-as"] = "65201" },
		path:   hostNb + "/config/peer-as",
		reason: "invalid value: got a string, expected a number",
	}, {
		name: "unknown module qualifier",
		break_: func(t *testing.T, m map[string]any) {
			m["openconfig-network-instances:network-instances"] = m["openconfig-network-instance:network-instances"]
			delete(m, "openconfig-network-instance:network-instances")
		},
		path:   "/network-instances",
		reason: `unknown module "openconfig-network-instances"`,
	}, {
		name: "invalid neighbor address",
		break_: func(t *testing.T, m map[string]any) {
			n := neighbor(t, m, "10.2.1.1")
			n["neighbor-address"] = "10.2.1.300"
			at(t, n, "config")["neighbor-address"] = "10.2.1.300"
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=10.2.1.300]/config/neighbor-address",
		reason: `invalid value "10.2.1.300": not a valid ip-address`,
	}, {
		name: "invalid prefix-set prefix",
		break_: func(t *testing.T, m map[string]any) {
			p := at(t, m, "openconfig-routing-policy:routing-policy", "defined-sets", "prefix-sets", "prefix-set", 0, "prefixes", "prefix", 0)
			p["ip-prefix"] = "10.0.0.x/32"
			at(t, p, "config")["ip-prefix"] = "10.0.0.x/32"
		},
		path:   "/routing-policy/defined-sets/prefix-sets/prefix-set[name=host1]/prefixes/prefix[ip-prefix=10.0.0.x/32][masklength-range=exact]/config/ip-prefix",
		reason: `invalid value "10.0.0.x/32": not a valid ip-prefix`,
	}, {
		name:   "neighbor without peer-as",
		break_: func(t *testing.T, m map[string]any) { delete(at(t, neighbor(t, m, "10.2.1.1"), "config"), "peer-as") },
		path:   hostNb + "/config/peer-as",
		reason: "neighbor has no peer-as (nor a peer-group giving one)",
	}, {
		name: "duplicate list key",
		break_: func(t *testing.T, m map[string]any) {
			ns := at(t, bgpTree(t, m), "neighbors")
			dup, _ := json.Marshal(neighbor(t, m, "10.2.1.1"))
			var n map[string]any
			json.Unmarshal(dup, &n)
			at(t, n, "config")["peer-as"] = 65999
			ns["neighbor"] = append(ns["neighbor"].([]any), n)
		},
		path:   hostNb,
		reason: "duplicate list entry: entries #5 and #7 have the same key",
	}, {
		name: "router-id not a dotted quad",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "global", "config")["router-id"] = "fd00::11"
		},
		path:   bgpP + "/global/config/router-id",
		reason: `invalid value "fd00::11": not a valid dotted-quad`,
	}, {
		name: "family enabled for neighbor, not globally",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "global", "afi-safis", "afi-safi", 1, "config")["enabled"] = false
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=fd00:1:1::]/afi-safis/afi-safi[afi-safi-name=IPV6_UNICAST]/config/enabled",
		reason: "IPV6_UNICAST is enabled for this neighbor but not in the global afi-safis of BGP",
	}, {
		name: "family from peer group not enabled globally",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "global", "afi-safis", "afi-safi", 0, "config")["enabled"] = false
		},
		path:   bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/config/enabled",
		reason: "IPV4_UNICAST is enabled for this neighbor but not in the global afi-safis of BGP",
	}, {
		name: "state is not config",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["state"] = map[string]any{"peer-as": 65201}
		},
		path:   hostNb + "/state",
		reason: "state (config false) cannot be configured",
	}, {
		name: "undefined peer group",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "10.1.1.0"), "config")["peer-group"] = "SPINES"
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=10.1.1.0]/config/peer-group",
		reason: `"SPINES" refers to something that is not configured`,
	}, {
		name: "list given as object",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "neighbors")["neighbor"] = map[string]any{}
		},
		path:   bgpP + "/neighbors/neighbor",
		reason: "expected a JSON array of list entries, got a JSON object",
	}, {
		name: "key leaf and config key differ",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "10.2.1.1"), "config")["neighbor-address"] = "10.2.1.2"
		},
		path:   hostNb + "/config/neighbor-address",
		reason: "are different",
	}, {
		name: "keepalive not shorter than hold-time",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "10.1.1.0"))["timers"] = map[string]any{"config": map[string]any{"keepalive-interval": 9}}
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=10.1.1.0]/timers/config/keepalive-interval",
		reason: "keepalive-interval 9s must be shorter than hold-time 9s",
	}, {
		name: "aggregate prefix with host bits",
		break_: func(t *testing.T, m map[string]any) {
			a := at(t, ni(t, m), "protocols", "protocol", 1, "local-aggregates", "aggregate", 0)
			a["prefix"] = "10.0.0.11/24"
			at(t, a, "config")["prefix"] = "10.0.0.11/24"
		},
		path:   "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=LOCAL_AGGREGATE][name=LOCAL]/local-aggregates/aggregate[prefix=10.0.0.11/24]/config/prefix",
		reason: "has host bits set",
	}, {
		name: "second BGP protocol",
		break_: func(t *testing.T, m map[string]any) {
			ps := at(t, ni(t, m), "protocols")
			ps["protocol"] = append(ps["protocol"].([]any), map[string]any{
				"identifier": "openconfig-policy-types:BGP", "name": "BGP2",
				"config": map[string]any{"identifier": "openconfig-policy-types:BGP", "name": "BGP2"}})
		},
		path:   "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP2]",
		reason: "a second BGP protocol",
	}, {
		name: "LOCAL_LINK static next hop",
		break_: func(t *testing.T, m map[string]any) {
			ps := at(t, ni(t, m), "protocols")
			ps["protocol"] = append(ps["protocol"].([]any), map[string]any{
				"identifier": "openconfig-policy-types:STATIC", "name": "STATIC",
				"config": map[string]any{"identifier": "openconfig-policy-types:STATIC", "name": "STATIC"},
				"static-routes": map[string]any{"static": []any{map[string]any{
					"prefix": "192.0.2.0/24", "config": map[string]any{"prefix": "192.0.2.0/24"},
					"next-hops": map[string]any{"next-hop": []any{map[string]any{
						"index": "a", "config": map[string]any{"index": "a", "next-hop": "openconfig-local-routing:LOCAL_LINK"}}}}}}}})
		},
		path:   "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=STATIC][name=STATIC]/static-routes/static[prefix=192.0.2.0/24]/next-hops/next-hop[index=a]/config/next-hop",
		reason: "next hop LOCAL_LINK is not supported",
	}, {
		name: "an interface leaf switchd does not apply",
		break_: func(t *testing.T, m map[string]any) {
			m["openconfig-interfaces:interfaces"] = map[string]any{"interface": []any{map[string]any{
				"name": "swp1", "config": map[string]any{"name": "swp1", "mtu": 9216, "loopback-mode": "openconfig-transport-types:FACILITY"}}}}
		},
		path:   "/interfaces/interface[name=swp1]/config/loopback-mode",
		reason: "not supported by switchd: switchd applies an interface's enabled, mtu",
	}, {
		name: "a BGP knob switchd does not apply",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "10.2.1.1"), "config")["route-flap-damping"] = true
		},
		path:   hostNb + "/config/route-flap-damping",
		reason: "not supported by switchd",
	}, {
		name: "a leaf set to its default is still refused",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "10.2.1.1"), "config")["send-community"] = "openconfig-bgp-types:NONE"
		},
		path:   hostNb + "/config/send-community",
		reason: "not supported by switchd",
	}, {
		name: "global apply-policy",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "global")["apply-policy"] = map[string]any{"config": map[string]any{"default-import-policy": "ACCEPT_ROUTE"}}
		},
		path:   bgpP + "/global/apply-policy",
		reason: "not supported by switchd: apply policies per neighbor or peer group",
	}, {
		name:   "peer-as 0",
		break_: func(t *testing.T, m map[string]any) { at(t, neighbor(t, m, "10.2.1.1"), "config")["peer-as"] = 0 },
		path:   hostNb + "/config/peer-as",
		reason: "peer-as 0 is reserved",
	}, {
		name: "peer-as 0 in the peer group",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "config")["peer-as"] = 0
		},
		path:   bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/config/peer-as",
		reason: "peer-as 0 is reserved",
	}, {
		name:   "local-as 0",
		break_: func(t *testing.T, m map[string]any) { at(t, neighbor(t, m, "10.2.1.1"), "config")["local-as"] = 0 },
		path:   hostNb + "/config/local-as",
		reason: "local-as 0 is reserved",
	}, {
		name: "minimum-advertisement-interval",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["timers"] = map[string]any{"config": map[string]any{"minimum-advertisement-interval": 30}}
		},
		path:   hostNb + "/timers/config/minimum-advertisement-interval",
		reason: "minimum-advertisement-interval 30s: not supported by switchd",
	}, {
		name: "hold-time 1",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["timers"] = map[string]any{"config": map[string]any{"hold-time": 1}}
		},
		path:   hostNb + "/timers/config/hold-time",
		reason: "hold-time 1s: must be at least 3s (RFC 4271",
	}, {
		name: "hold-time 2 in the peer group",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "timers", "config")["hold-time"] = 2
		},
		path:   bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/timers/config/hold-time",
		reason: "hold-time 2s: must be at least 3s",
	}, {
		name: "hold-time 0",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["timers"] = map[string]any{"config": map[string]any{"hold-time": 0}}
		},
		path:   hostNb + "/timers/config/hold-time",
		reason: "hold-time 0 (no hold timer) is not supported by switchd",
	}, {
		name: "keepalive 0",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["timers"] = map[string]any{"config": map[string]any{"keepalive-interval": 0}}
		},
		path:   hostNb + "/timers/config/keepalive-interval",
		reason: "keepalive-interval 0 (no keepalives) needs hold-time 0",
	}, {
		name: "keepalive not shorter than the default hold-time",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["timers"] = map[string]any{"config": map[string]any{"keepalive-interval": 90}}
		},
		path:   hostNb + "/timers/config/keepalive-interval",
		reason: "keepalive-interval 1m30s must be shorter than hold-time 1m30s",
	}, {
		name: "IPv4 unicast on an IPv6 neighbor",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "fd00:1:1::"), "afi-safis", "afi-safi", 0, "config")["enabled"] = true
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=fd00:1:1::]/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]",
		reason: "IPV4_UNICAST over an IPv6 session needs RFC 8950 extended next hop, not supported by switchd",
	}, {
		name: "IPv4 unicast on an IPv6 neighbor from its peer group",
		break_: func(t *testing.T, m map[string]any) {
			delete(neighbor(t, m, "fd00:1:1::"), "afi-safis")
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=fd00:1:1::]/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]",
		reason: "(the family is enabled by peer group SPINE)",
	}, {
		name: "IPv6 unicast on an IPv4 neighbor",
		break_: func(t *testing.T, m map[string]any) {
			afs := at(t, neighbor(t, m, "10.2.1.1"), "afi-safis")
			afs["afi-safi"] = append(afs["afi-safi"].([]any), map[string]any{
				"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST",
				"config":        map[string]any{"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST", "enabled": true}})
		},
		path:   hostNb + "/afi-safis/afi-safi[afi-safi-name=IPV6_UNICAST]",
		reason: "IPV6_UNICAST over an IPv4 session needs RFC 8950 extended next hop",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			tc.break_(t, m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			in, err := Parse(data, "leaf.json")
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", in.BGP)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			t.Logf("%v", err)
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					if !strings.HasPrefix(err.Error(), "/") {
						t.Errorf("message %q does not start with the path", err)
					}
					return
				}
			}
			t.Errorf("no error at\n  %s\ncontaining %q; got:\n%v", tc.path, tc.reason, err)
		})
	}
}

// TestSupportedLeavesAreInSchema catches a typo in supportedLeaves, which
// would refuse the leaf it meant to allow.
func TestSupportedLeavesAreInSchema(t *testing.T) {
	for l := range supported().leaves {
		e := oc.LazySchemaTree()["Device"]
		for _, name := range strings.Split(strings.TrimPrefix(l, "/"), "/") {
			if e = findChild(e, name); e == nil {
				t.Errorf("%s: no %q in the schema", l, name)
				break
			}
		}
		if e != nil && (e.IsDir() || e.ReadOnly()) {
			t.Errorf("%s is not a config leaf", l)
		}
	}
}

func TestParseRejectsDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, file, data, reason string
	}{
		{"JSON syntax", "a.json", "{\n  \"a\": 1,\n}", "line 3"},
		{"member twice", "a.json", `{"openconfig-interfaces:interfaces": {}, "openconfig-interfaces:interfaces": {}}`, `member "openconfig-interfaces:interfaces" given twice`},
		{"YAML syntax", "a.yaml", "a: [1\n", "parse YAML"},
		{"not an object", "a.json", `[1]`, "must be a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want an error containing %q", err, tc.reason)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	m := leafDoc(t)
	delete(at(t, neighbor(t, m, "10.2.1.1"), "config"), "peer-as")
	at(t, neighbor(t, m, "fd00:2:1::1"), "config")["bogus"] = true
	at(t, bgpTree(t, m), "global", "config")["as"] = "x"
	data, _ := json.Marshal(m)
	_, err := Parse(data, "leaf.json")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v", err)
	}
	// Schema problems stop before the semantic checks: peer-as is reported
	// once the file is schema-valid.
	want := []string{bgpP + "/global/config/as", bgpP + "/neighbors/neighbor[neighbor-address=fd00:2:1::1]/config/bogus"}
	var got []string
	for _, e := range es {
		got = append(got, e.Path)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s\nerrors:\n%v", diff, err)
	}
}

func loadExample(t *testing.T, name string) *Intent {
	t.Helper()
	in, err := Load(filepath.Join("../../examples", name))
	if err != nil {
		t.Fatalf("Load %s: %v", name, err)
	}
	return in
}

func nb(addr string, as uint32, desc string, fams ...bgp.Family) bgp.Neighbor {
	return bgp.Neighbor{Address: netip.MustParseAddr(addr), PeerAS: as, Description: desc, Enabled: true, Families: fams}
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func blackhole(p string) fib.Route {
	r := fib.Route{Key: fib.RouteKey{Table: fib.MainTable, Dst: netip.MustParsePrefix(p)}, Type: fib.Blackhole}
	r.Normalize()
	return r
}

func TestExamples(t *testing.T) {
	fast := bgp.Timers{ConnectRetry: 5 * time.Second, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}
	withTimers := func(n bgp.Neighbor) bgp.Neighbor { n.Timers = fast; return n }
	withLocal := func(n bgp.Neighbor, a string) bgp.Neighbor { n.LocalAddress = netip.MustParseAddr(a); return n }
	mp := bgp.Multipath{Enabled: true, MultipleAS: true, MaxPaths: 64}
	v4, v6 := bgp.IPv4Unicast, bgp.IPv6Unicast
	// The examples state their policies; without them nothing would be
	// imported or exported (REJECT_ROUTE, RFC 8212).
	accept := bgp.PolicyChain{Default: bgp.Accept}
	transit := func(n bgp.Neighbor) bgp.Neighbor { n.Import, n.Export = accept, accept; return n }
	fromHost := func(n bgp.Neighbor) bgp.Neighbor {
		n.Import, n.Export = bgp.PolicyChain{Policies: []string{"from-host1"}, Default: bgp.Reject}, accept
		return n
	}
	toLeaf := func(n bgp.Neighbor) bgp.Neighbor {
		n.Import, n.Export = accept, bgp.PolicyChain{Policies: []string{"own-prefixes"}, Default: bgp.Reject}
		return n
	}
	host1 := []bgp.PrefixRange{
		{Prefix: netip.MustParsePrefix("10.0.0.21/32"), MinLen: 32, MaxLen: 32},
		{Prefix: netip.MustParsePrefix("10.10.1.0/24"), MinLen: 24, MaxLen: 32},
		{Prefix: netip.MustParsePrefix("fd00:10:1::/64"), MinLen: 64, MaxLen: 128},
		{Prefix: netip.MustParsePrefix("fd00::21/128"), MinLen: 128, MaxLen: 128},
	}
	web := policy.MustParseSelector(`role == "web"`)
	want := map[string]Intent{
		"acl.yaml": {Dataplane: Dataplane{HashPolicy: fib.DefaultHashPolicy}, ACL: aclExample()},
		"policy.yaml": {Dataplane: Dataplane{HashPolicy: fib.DefaultHashPolicy}, Policy: policy.Intent{
			Default: policy.Allow,
			Policies: []policy.Policy{{
				Name: "db", Order: 100, Selector: policy.MustParseSelector(`role == "db"`), SelectsIngress: true,
				Ingress: []policy.Rule{{Seq: 10, Action: policy.Allow, Protocol: policy.ProtoTCP,
					DstPorts: []policy.PortRange{{First: 5432, Last: 5432}}, Peer: policy.Peer{Selector: &web}}},
			}},
			FailsafeExtra: policy.Failsafe{TCP: []uint16{9100}},
		}},
		"leaf.json": {Dataplane: Dataplane{HashPolicy: fib.HashL4, ResilientBuckets: 64}, BGP: bgp.Config{
			ASN: 65101, RouterID: netip.MustParseAddr("10.0.0.11"), Multipath: mp,
			Neighbors: []bgp.Neighbor{
				transit(withTimers(nb("10.1.1.0", 65000, "spine1", v4))), // peer-as, timers, families and policy from group SPINE
				transit(withTimers(nb("10.1.2.0", 65000, "spine2", v4))),
				fromHost(nb("10.2.1.1", 65201, "host1", v4)),
				transit(withTimers(nb("fd00:1:1::", 65000, "spine1", v6))), // IPV4_UNICAST of the group turned off
				transit(withTimers(nb("fd00:1:2::", 65000, "spine2", v6))),
				fromHost(nb("fd00:2:1::1", 65201, "host1", v6)),
			},
			Originate:  pfx("10.0.0.11/32", "fd00::11/128"),
			PrefixSets: []bgp.PrefixSet{{Name: "host1", Prefixes: host1}},
			Policies: []bgp.Policy{{Name: "from-host1", Statements: []bgp.Statement{
				{Name: "own-prefixes", PrefixSet: "host1", Result: bgp.Accept}}}},
		}},
		"spine.yaml": {Dataplane: Dataplane{HashPolicy: fib.HashL4}, BGP: bgp.Config{
			ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), Multipath: mp,
			Neighbors: []bgp.Neighbor{
				transit(withTimers(nb("10.1.1.1", 65101, "leaf1", v4))),
				transit(withTimers(nb("10.1.3.1", 65102, "leaf2", v4))),
				transit(withTimers(nb("fd00:1:1::1", 65101, "leaf1", v6))),
				transit(withTimers(nb("fd00:1:3::1", 65102, "leaf2", v6))),
			},
			// 192.0.2.0/24 is a static route without a table connection.
			Originate: pfx("10.0.0.1/32", "fd00::1/128"),
		}, Routes: []fib.Route{blackhole("192.0.2.0/24")}},
		"host.json": {Dataplane: Dataplane{HashPolicy: fib.HashL4}, BGP: bgp.Config{
			ASN: 65201, RouterID: netip.MustParseAddr("10.0.0.21"), Multipath: mp,
			Neighbors: []bgp.Neighbor{
				toLeaf(withLocal(nb("10.2.1.0", 65101, "leaf1", v4), "10.2.1.1")),
				toLeaf(withLocal(nb("fd00:2:1::", 65101, "leaf1", v6), "fd00:2:1::1")),
			},
			Originate:  pfx("10.0.0.21/32", "fd00::21/128"),
			PrefixSets: []bgp.PrefixSet{{Name: "own", Prefixes: host1}},
			Policies: []bgp.Policy{{Name: "own-prefixes", Statements: []bgp.Statement{
				{Name: "loopbacks-and-workloads", PrefixSet: "own", Result: bgp.Accept}}}},
		}, Workloads: Workloads{
			StateDir: "/var/lib/switchd",
			Pools: []host.Pool{
				{Prefix: netip.MustParsePrefix("10.10.1.0/24"), BlockBits: 26},
				{Prefix: netip.MustParsePrefix("fd00:10:1::/64")},
			},
			VMs: []host.VMRequest{{
				Name: "vm1", Tap: "tap-vm1",
				MAC:    net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
				Labels: map[string]string{"app": "web"},
			}},
		}},
	}
	files, err := os.ReadDir("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f.Name(), func(t *testing.T) {
			in := loadExample(t, f.Name())
			w, ok := want[f.Name()]
			if !ok {
				t.Fatalf("no expectations for example %s: add them here", f.Name())
			}
			if diff := cmp.Diff(w.BGP, in.BGP, cmpOpts...); diff != "" {
				t.Errorf("BGP (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(w.Routes, in.Routes, cmpOpts...); diff != "" {
				t.Errorf("Routes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(w.Workloads, in.Workloads, cmpOpts...); diff != "" {
				t.Errorf("Workloads (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(w.Policy, in.Policy, cmpOpts...); diff != "" {
				t.Errorf("Policy (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(w.ACL, in.ACL, cmpOpts...); diff != "" {
				t.Errorf("ACL (-want +got):\n%s", diff)
			}
			if w.Dataplane != in.Dataplane {
				t.Errorf("Dataplane = %+v, want %+v", in.Dataplane, w.Dataplane)
			}
		})
	}
	if got := loadExample(t, "host.json").Device.GetSwitchd().GetStateDir(); got != "/var/lib/switchd" {
		t.Errorf("host.json switchd state-dir = %q", got)
	}
}

// TestRoundTrip renders a loaded config as RFC 7951 JSON of its config
// leaves and loads that again: the same Intent must come back.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"leaf.json", "spine.yaml", "host.json", "policy.yaml", "acl.yaml"} {
		t.Run(name, func(t *testing.T) {
			in := loadExample(t, name)
			out, err := ygot.EmitJSON(in.Device, &ygot.EmitJSONConfig{
				Format:        ygot.RFC7951,
				RFC7951Config: &ygot.RFC7951JSONConfig{AppendModuleName: true, PreferShadowPath: true},
			})
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse([]byte(out), "out.json")
			if err != nil {
				t.Fatalf("reparse: %v\n%s", err, out)
			}
			if diff := cmp.Diff(in, again, cmpOpts...); diff != "" {
				t.Errorf("round trip (-first +second):\n%s", diff)
			}
		})
	}
}

// TestYAMLEqualsJSON loads the same tree as JSON and as YAML.
func TestYAMLEqualsJSON(t *testing.T) {
	for _, name := range []string{"leaf.json", "spine.yaml", "host.json", "policy.yaml", "acl.yaml"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("../../examples", name))
			if err != nil {
				t.Fatal(err)
			}
			var j, y []byte
			if strings.HasSuffix(name, ".json") {
				j = data
				if y, err = yaml.JSONToYAML(data); err != nil {
					t.Fatal(err)
				}
			} else {
				y = data
				if j, err = yaml.YAMLToJSON(data); err != nil {
					t.Fatal(err)
				}
			}
			fromJSON, err := Parse(j, "c.json")
			if err != nil {
				t.Fatal(err)
			}
			fromYAML, err := Parse(y, "c.yaml")
			if err != nil {
				t.Fatal(err)
			}
			// And by content, without an extension.
			sniffed, err := Parse(y, "config")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(fromJSON, fromYAML, cmpOpts...); diff != "" {
				t.Errorf("JSON vs YAML (-json +yaml):\n%s", diff)
			}
			if diff := cmp.Diff(fromJSON, sniffed, cmpOpts...); diff != "" {
				t.Errorf("JSON vs sniffed YAML (-json +yaml):\n%s", diff)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	es := Errors{{Path: "/a/b[k=v]", Reason: "bad"}, {Path: "/c", Reason: "worse"}}
	if got, want := es.Error(), "/a/b[k=v]: bad\n/c: worse"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	p := path{{name: "a"}, {name: "b", keys: []kv{{"k", `x]y\z`}}}}
	if got, want := p.String(), `/a/b[k=x\]y\\z]`; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
}

package config

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchd/switchd/switchd/bgp"
)

// withPolicy adds graceful restart and a routing policy that host
// neighbor 10.2.1.1 imports, to a leaf document.
func withPolicy(t *testing.T, m map[string]any) {
	t.Helper()
	g := at(t, bgpTree(t, m), "global")
	g["graceful-restart"] = map[string]any{"config": map[string]any{"enabled": true, "restart-time": 30, "stale-routes-time": 60}}
	m["openconfig-routing-policy:routing-policy"] = map[string]any{
		"defined-sets": map[string]any{"prefix-sets": map[string]any{"prefix-set": []any{map[string]any{
			"name": "host1", "config": map[string]any{"name": "host1", "mode": "MIXED"},
			"prefixes": map[string]any{"prefix": []any{
				map[string]any{"ip-prefix": "10.100.1.0/24", "masklength-range": "24..32",
					"config": map[string]any{"ip-prefix": "10.100.1.0/24", "masklength-range": "24..32"}},
				map[string]any{"ip-prefix": "fd00:100:1::/64", "masklength-range": "exact",
					"config": map[string]any{"ip-prefix": "fd00:100:1::/64", "masklength-range": "exact"}},
			}},
		}}}},
		"policy-definitions": map[string]any{"policy-definition": []any{map[string]any{
			"name": "from-host1", "config": map[string]any{"name": "from-host1"},
			"statements": map[string]any{"statement": []any{map[string]any{
				"name": "own", "config": map[string]any{"name": "own"},
				"conditions": map[string]any{"match-prefix-set": map[string]any{"config": map[string]any{
					"prefix-set": "host1", "match-set-options": "ANY"}}},
				"actions": map[string]any{"config": map[string]any{"policy-result": "ACCEPT_ROUTE"}},
			}}},
		}}},
	}
	n := neighbor(t, m, "10.2.1.1")
	n["apply-policy"] = map[string]any{"config": map[string]any{"import-policy": []any{"from-host1"}}}
	n["graceful-restart"] = map[string]any{"config": map[string]any{"helper-only": true}}
}

func parseDoc(t *testing.T, m map[string]any) (*Intent, error) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(b, "leaf.json")
}

func TestParsePolicyAndGracefulRestart(t *testing.T) {
	m := leafDoc(t)
	withPolicy(t, m)
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	c := in.BGP
	wantGR := bgp.GracefulRestart{Enabled: true, RestartTime: 30 * time.Second, StaleRoutesTime: 60 * time.Second}
	if c.GracefulRestart != wantGR {
		t.Errorf("global graceful restart = %+v, want %+v", c.GracefulRestart, wantGR)
	}
	wantSets := []bgp.PrefixSet{{Name: "host1", Prefixes: []bgp.PrefixRange{
		{Prefix: netip.MustParsePrefix("10.100.1.0/24"), MinLen: 24, MaxLen: 32},
		{Prefix: netip.MustParsePrefix("fd00:100:1::/64"), MinLen: 64, MaxLen: 64},
	}}}
	if d := cmp.Diff(wantSets, c.PrefixSets, cmpOpts...); d != "" {
		t.Errorf("prefix sets (-want +got):\n%s", d)
	}
	wantPol := []bgp.Policy{{Name: "from-host1", Statements: []bgp.Statement{{Name: "own", PrefixSet: "host1", Result: bgp.Accept}}}}
	if d := cmp.Diff(wantPol, c.Policies, cmpOpts...); d != "" {
		t.Errorf("policies (-want +got):\n%s", d)
	}
	for _, n := range c.Neighbors {
		switch n.Address.String() {
		case "10.2.1.1":
			want := bgp.PolicyChain{Policies: []string{"from-host1"}, Default: bgp.Reject}
			if d := cmp.Diff(want, n.Import); d != "" {
				t.Errorf("import chain of 10.2.1.1 (-want +got):\n%s", d)
			}
			if g := n.GracefulRestart; g == nil || !g.HelperOnly || !g.Enabled || g.RestartTime != 30*time.Second {
				t.Errorf("graceful restart of 10.2.1.1 = %+v, want the global one with helper-only", g)
			}
		default:
			if n.GracefulRestart != nil {
				t.Errorf("neighbor %v without an override has graceful restart %+v, want nil (the global one)", n.Address, n.GracefulRestart)
			}
		}
	}
	if err := bgp.Validate(c); err != nil {
		t.Errorf("translated config rejected by the speaker: %v", err)
	}
}

// TestDefaultPolicyIsReject: a neighbor whose apply-policy (its own or
// its peer group's) gives no default rejects what no policy accepted, in
// both directions: OpenConfig's default-import-policy and
// default-export-policy are REJECT_ROUTE, as RFC 8212 asks of eBGP. An
// explicit ACCEPT_ROUTE, or a policy, still lets routes through.
func TestDefaultPolicyIsReject(t *testing.T) {
	m := leafDoc(t)
	delete(at(t, bgpTree(t, m), "peer-groups", "peer-group", 0), "apply-policy")
	delete(neighbor(t, m, "fd00:2:1::1"), "apply-policy")
	at(t, neighbor(t, m, "10.2.1.1"), "apply-policy")["config"] = map[string]any{"import-policy": []any{"from-host1"}}
	neighbor(t, m, "fd00:1:2::")["apply-policy"] = map[string]any{"config": map[string]any{"default-export-policy": "ACCEPT_ROUTE"}}
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	reject, accept := bgp.PolicyChain{Default: bgp.Reject}, bgp.PolicyChain{Default: bgp.Accept}
	want := map[string][2]bgp.PolicyChain{
		"10.1.1.0":    {reject, reject},
		"10.1.2.0":    {reject, reject},
		"fd00:1:1::":  {reject, reject},
		"fd00:1:2::":  {reject, accept},
		"10.2.1.1":    {{Policies: []string{"from-host1"}, Default: bgp.Reject}, reject},
		"fd00:2:1::1": {reject, reject},
	}
	for _, n := range in.BGP.Neighbors {
		w := want[n.Address.String()]
		if d := cmp.Diff(w[0], n.Import); d != "" {
			t.Errorf("import chain of %v (-want +got):\n%s", n.Address, d)
		}
		if d := cmp.Diff(w[1], n.Export); d != "" {
			t.Errorf("export chain of %v (-want +got):\n%s", n.Address, d)
		}
	}
}

func TestParseRejectsPolicy(t *testing.T) {
	const ps = "/routing-policy/defined-sets/prefix-sets/prefix-set[name=host1]/prefixes/prefix[ip-prefix=10.100.1.0/24][masklength-range=24..32]"
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name: "undefined policy",
		break_: func(t *testing.T, m map[string]any) {
			at(t, neighbor(t, m, "10.2.1.1"), "apply-policy", "config")["import-policy"] = []any{"nope"}
		},
		path:   hostNb + "/apply-policy/config/import-policy",
		reason: `"nope"`,
	}, {
		name: "masklength range outside the prefix",
		break_: func(t *testing.T, m map[string]any) {
			p := at(t, m, "openconfig-routing-policy:routing-policy", "defined-sets", "prefix-sets", "prefix-set", 0, "prefixes", "prefix", 0)
			p["masklength-range"] = "16..32"
			at(t, p, "config")["masklength-range"] = "16..32"
		},
		path:   strings.Replace(ps, "24..32", "16..32", 1) + "/config/masklength-range",
		reason: "must lie within 24..32",
	}, {
		name: "unsupported condition",
		break_: func(t *testing.T, m map[string]any) {
			st := at(t, m, "openconfig-routing-policy:routing-policy", "policy-definitions", "policy-definition", 0, "statements", "statement", 0)
			at(t, st, "conditions")["config"] = map[string]any{"install-protocol-eq": "BGP"}
		},
		path:   "/routing-policy/policy-definitions/policy-definition[name=from-host1]/statements/statement[name=own]/conditions/config/install-protocol-eq",
		reason: "not supported by switchd: only match-prefix-set conditions are supported",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			withPolicy(t, m)
			tc.break_(t, m)
			_, err := parseDoc(t, m)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse: err = %v, want Errors", err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Fatalf("errors %v: none at %s containing %q", es, tc.path, tc.reason)
		})
	}
}

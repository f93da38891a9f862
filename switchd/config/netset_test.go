package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchd/switchd/policy"
)

// netSetDoc is examples/policy.yaml with a network set "remote-web"
// (labels role=web, tier=front; prefixes 10.1.0.0/24, 2001:db8:1::/48 and a
// host, 10.2.0.5/32).
func netSetDoc(t *testing.T) map[string]any {
	m := policyDoc(t)
	label := func(k, v string) any {
		return map[string]any{"key": k, "config": map[string]any{"key": k, "value": v}}
	}
	at(t, m, "switchd:switchd", "workload-policy")["network-sets"] = map[string]any{"network-set": []any{map[string]any{
		"name":   "remote-web",
		"config": map[string]any{"name": "remote-web", "prefix": []any{"10.2.0.5/32", "2001:db8:1::/48", "10.1.0.0/24", "10.2.0.5/32"}},
		"labels": map[string]any{"label": []any{label("role", "web"), label("tier", "front")}},
	}}}
	return m
}

func TestNetworkSetTranslates(t *testing.T) {
	in, err := parseDoc(t, netSetDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.NetworkSet{{
		Name:   "remote-web",
		Labels: map[string]string{"role": "web", "tier": "front"},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.5/32"),
			netip.MustParsePrefix("2001:db8:1::/48")},
	}}
	if diff := cmp.Diff(want, in.Policy.NetworkSets, cmpOpts...); diff != "" {
		t.Errorf("NetworkSets (-want +got):\n%s", diff)
	}
	if len(in.Policy.Policies) != 1 {
		t.Errorf("policies %+v: the network set must not change them", in.Policy.Policies)
	}
}

// TestParseRejectsNetworkSet: bad network sets are refused at their
// OpenConfig path, and nothing is returned to apply.
func TestParseRejectsNetworkSet(t *testing.T) {
	const set = "/switchd/workload-policy/network-sets/network-set[name=remote-web]"
	ns := func(t *testing.T, m map[string]any) map[string]any {
		return at(t, m, "switchd:switchd", "workload-policy", "network-sets", "network-set", 0)
	}
	label := func(t *testing.T, m map[string]any, i int) map[string]any {
		return at(t, ns(t, m), "labels", "label", i)
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name:   "prefix that does not parse",
		break_: func(t *testing.T, m map[string]any) { at(t, ns(t, m), "config")["prefix"] = []any{"10.1.0.0/33"} },
		path:   set + "/config/prefix",
		reason: "10.1.0.0/33",
	}, {
		name:   "prefix with host bits",
		break_: func(t *testing.T, m map[string]any) { at(t, ns(t, m), "config")["prefix"] = []any{"10.1.0.9/24"} },
		path:   set + "/config/prefix",
		reason: "prefix 10.1.0.9/24 has host bits set (did you mean 10.1.0.0/24?)",
	}, {
		name:   "no prefix",
		break_: func(t *testing.T, m map[string]any) { delete(at(t, ns(t, m), "config"), "prefix") },
		path:   set + "/config/prefix",
		reason: "network set remote-web has no prefix: it would match nothing",
	}, {
		name: "label key a selector cannot match",
		break_: func(t *testing.T, m map[string]any) {
			l := label(t, m, 0)
			l["key"], at(t, l, "config")["key"] = "-role", "-role"
		},
		path:   set + "/labels/label[key=-role]/config",
		reason: `label key "-role"`,
	}, {
		name:   "label value a selector cannot match",
		break_: func(t *testing.T, m map[string]any) { at(t, label(t, m, 1), "config")["value"] = "front end" },
		path:   set + "/labels/label[key=tier]/config",
		reason: `label value "front end": ' ' is not allowed`,
	}, {
		name: "duplicate name",
		break_: func(t *testing.T, m map[string]any) {
			l := at(t, m, "switchd:switchd", "workload-policy", "network-sets")
			l["network-set"] = append(l["network-set"].([]any), map[string]any{"name": "remote-web",
				"config": map[string]any{"name": "remote-web", "prefix": []any{"10.9.0.0/16"}}})
		},
		path:   set,
		reason: "duplicate",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := netSetDoc(t)
			tc.break_(t, m)
			in, err := parseDoc(t, m)
			if err == nil || in != nil {
				t.Fatalf("accepted (error %v): %+v", err, in)
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

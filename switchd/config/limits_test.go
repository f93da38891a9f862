package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchd/switchd/switchd/bgp"
)

// prefixLimit puts an ipv4-unicast prefix-limit config into the afi-safi
// entry e.
func prefixLimit(e map[string]any, cfg map[string]any) {
	e["ipv4-unicast"] = map[string]any{"prefix-limit": map[string]any{"config": cfg}}
}

func bgpNeighbor(t *testing.T, in *Intent, addr string) bgp.Neighbor {
	t.Helper()
	for _, n := range in.BGP.Neighbors {
		if n.Address.String() == addr {
			return n
		}
	}
	t.Fatalf("no neighbor %s in %+v", addr, in.BGP.Neighbors)
	return bgp.Neighbor{}
}

// prefix-limit and ebgp-multihop reach bgp.Neighbor, from the neighbor or
// its peer group, the neighbor's leaves first.
func TestNeighborLimitsTranslated(t *testing.T) {
	m := leafDoc(t)
	host := neighbor(t, m, "10.2.1.1")
	prefixLimit(at(t, host, "afi-safis", "afi-safi", 0), map[string]any{"max-prefixes": 100, "warning-threshold-pct": 80})
	host["ebgp-multihop"] = map[string]any{"config": map[string]any{"enabled": true, "multihop-ttl": 2}}
	group := at(t, bgpTree(t, m), "peer-groups", "peer-group", 0)
	prefixLimit(at(t, group, "afi-safis", "afi-safi", 0), map[string]any{"max-prefixes": 5000})
	group["ebgp-multihop"] = map[string]any{"config": map[string]any{"enabled": true}}
	spine2 := neighbor(t, m, "10.1.2.0")
	spine2["ebgp-multihop"] = map[string]any{"config": map[string]any{"enabled": true, "multihop-ttl": 3}}
	data, _ := json.Marshal(m)
	in, err := Parse(data, "leaf.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr   string
		ttl    uint8
		limits []bgp.PrefixLimit
	}{
		{"10.2.1.1", 2, []bgp.PrefixLimit{{Family: bgp.IPv4Unicast, MaxPrefixes: 100, WarningThresholdPct: 80}}},
		{"10.1.1.0", 255, []bgp.PrefixLimit{{Family: bgp.IPv4Unicast, MaxPrefixes: 5000}}}, // the group's
		{"10.1.2.0", 3, []bgp.PrefixLimit{{Family: bgp.IPv4Unicast, MaxPrefixes: 5000}}},
		{"fd00:2:1::1", 0, nil},
	} {
		n := bgpNeighbor(t, in, tc.addr)
		if n.MultihopTTL != tc.ttl || !cmp.Equal(n.PrefixLimits, tc.limits) {
			t.Errorf("neighbor %s: multihop TTL %d, prefix limits %+v; want %d, %+v", tc.addr, n.MultihopTTL, n.PrefixLimits, tc.ttl, tc.limits)
		}
	}
}

func TestNeighborLimitsRefused(t *testing.T) {
	pl := hostNb + "/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/ipv4-unicast/prefix-limit/config"
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, host map[string]any)
		path   string
		reason string
	}{{
		name: "prevent-teardown",
		break_: func(t *testing.T, host map[string]any) {
			prefixLimit(at(t, host, "afi-safis", "afi-safi", 0), map[string]any{"max-prefixes": 10, "prevent-teardown": true})
		},
		path: pl + "/prevent-teardown", reason: "not supported",
	}, {
		name: "no max-prefixes",
		break_: func(t *testing.T, host map[string]any) {
			prefixLimit(at(t, host, "afi-safis", "afi-safi", 0), map[string]any{"warning-threshold-pct": 50})
		},
		path: pl + "/max-prefixes", reason: "needs max-prefixes",
	}, {
		name: "ttl without multihop",
		break_: func(t *testing.T, host map[string]any) {
			host["ebgp-multihop"] = map[string]any{"config": map[string]any{"multihop-ttl": 2}}
		},
		path: hostNb + "/ebgp-multihop/config/multihop-ttl", reason: "not enabled",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			tc.break_(t, neighbor(t, m, "10.2.1.1"))
			data, _ := json.Marshal(m)
			_, err := Parse(data, "leaf.json")
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse = %v, want errors", err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no error at %s saying %q: %v", tc.path, tc.reason, err)
		})
	}
}

// spineGroup is the leaf document's peer group SPINE.
func spineGroup(t *testing.T, m map[string]any) map[string]any {
	return at(t, m, "openconfig-network-instance:network-instances", "network-instance", 0, "protocols", "protocol", 0, "bgp", "peer-groups", "peer-group", 0)
}

// TestPrefixLimitValuesRefusedAtTheirLeaf: the speaker checks prefix-limit
// values (bgp.Validate, one place); each error is reported at the leaf
// that gave the value, the neighbor's or its peer group's, once.
func TestPrefixLimitValuesRefusedAtTheirLeaf(t *testing.T) {
	pl := hostNb + "/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/ipv4-unicast/prefix-limit/config"
	group := bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/ipv4-unicast/prefix-limit/config"
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name: "max-prefixes 0",
		break_: func(t *testing.T, m map[string]any) {
			prefixLimit(at(t, neighbor(t, m, "10.2.1.1"), "afi-safis", "afi-safi", 0), map[string]any{"max-prefixes": 0})
		},
		path: pl + "/max-prefixes", reason: "needs max-prefixes of at least 1",
	}, {
		name: "max-prefixes 0 in the peer group",
		break_: func(t *testing.T, m map[string]any) {
			prefixLimit(at(t, spineGroup(t, m), "afi-safis", "afi-safi", 0), map[string]any{"max-prefixes": 0})
		},
		path: group + "/max-prefixes", reason: "needs max-prefixes of at least 1",
	}, {
		name: "no max-prefixes where the group gave a threshold",
		break_: func(t *testing.T, m map[string]any) {
			prefixLimit(at(t, spineGroup(t, m), "afi-safis", "afi-safi", 0), map[string]any{"warning-threshold-pct": 50})
		},
		path: group + "/max-prefixes", reason: "needs max-prefixes of at least 1",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			tc.break_(t, m)
			data, _ := json.Marshal(m)
			_, err := Parse(data, "leaf.json")
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse = %v, want errors", err)
			}
			n := 0
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d errors at %s saying %q, want 1: %v", n, tc.path, tc.reason, err)
			}
		})
	}
}

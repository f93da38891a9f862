package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/switchd/bgp"
)

// ifNeighbors sets bgp/interface-neighbors of a decoded document.
func ifNeighbors(t *testing.T, m map[string]any, entries ...map[string]any) {
	var l []any
	for _, e := range entries {
		l = append(l, map[string]any{"interface": e["interface"], "config": e})
	}
	bgpTree(t, m)["switchd:interface-neighbors"] = map[string]any{"interface-neighbor": l}
}

// TestUnnumberedNeighbors: both forms of an unnumbered neighbor translate
// to a bgp.Neighbor with its interface and both families: one given by
// interface alone (switchd's bgp/interface-neighbors, settings from its
// peer group, the address discovered), and one given by the peer's
// link-local address with the interface as transport local-address
// (OpenConfig's own leaves). Their families are their group's (with none
// configured anywhere, both: TestUnnumberedPairPrivileged).
func TestUnnumberedNeighbors(t *testing.T) {
	m := leafDoc(t)
	ifNeighbors(t, m, map[string]any{"interface": "swp1", "peer-group": "SPINE", "description": "spine3"})
	nbs := at(t, bgpTree(t, m), "neighbors")
	nbs["neighbor"] = append(nbs["neighbor"].([]any), map[string]any{
		"neighbor-address": "fe80::2",
		"config":           map[string]any{"neighbor-address": "fe80::2", "peer-group": "SPINE"},
		"transport":        map[string]any{"config": map[string]any{"local-address": "swp2"}},
	})
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bgp.Neighbor{}
	for _, n := range in.BGP.Neighbors {
		if n.Interface != "" {
			got[n.Interface] = n
		}
	}
	if len(got) != 2 {
		t.Fatalf("unnumbered neighbors %+v, want swp1 and swp2", got)
	}
	// SPINE enables IPv4 unicast only: IPv4 over the IPv6 session.
	v4 := []bgp.Family{bgp.IPv4Unicast}
	if n := got["swp1"]; n.Address != netip.MustParseAddr("fe80::%swp1") || n.PeerAS == 0 || n.Description != "spine3" || !slices.Equal(n.Families, v4) {
		t.Errorf("swp1: %+v", n)
	}
	if n := got["swp2"]; n.Address != netip.MustParseAddr("fe80::2") || n.LocalAddress.IsValid() || !slices.Equal(n.Families, v4) {
		t.Errorf("swp2: %+v", n)
	}
}

// TestUnnumberedRejects: each mistake is reported at its leaf.
func TestUnnumberedRejects(t *testing.T) {
	ifn := bgpP + "/interface-neighbors/interface-neighbor[interface=%s]"
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name: "interface name",
		break_: func(t *testing.T, m map[string]any) {
			ifNeighbors(t, m, map[string]any{"interface": "a/b", "peer-group": "SPINE"})
		},
		path:   strings.Replace(ifn, "%s", "a/b", 1) + "/config/interface",
		reason: `interface "a/b"`,
	}, {
		name: "no peer AS",
		break_: func(t *testing.T, m map[string]any) {
			ifNeighbors(t, m, map[string]any{"interface": "swp1"})
		},
		path:   strings.Replace(ifn, "%s", "swp1", 1) + "/config/peer-as",
		reason: "no peer-as",
	}, {
		name: "unknown peer group",
		break_: func(t *testing.T, m map[string]any) {
			ifNeighbors(t, m, map[string]any{"interface": "swp1", "peer-group": "NONE"})
		},
		path:   strings.Replace(ifn, "%s", "swp1", 1) + "/config/peer-group",
		reason: `peer group "NONE" is not configured`,
	}, {
		name: "interface as local-address of a numbered neighbor",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["transport"] = map[string]any{"config": map[string]any{"local-address": "swp1"}}
		},
		path:   hostNb + "/transport/config/local-address",
		reason: "an interface name is taken only for an unnumbered neighbor",
	}, {
		name: "link-local neighbor without interface",
		break_: func(t *testing.T, m map[string]any) {
			nbs := at(t, bgpTree(t, m), "neighbors")
			nbs["neighbor"] = append(nbs["neighbor"].([]any), map[string]any{
				"neighbor-address": "fe80::2",
				"config":           map[string]any{"neighbor-address": "fe80::2", "peer-group": "SPINE"},
			})
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=fe80::2]/transport/config/local-address",
		reason: "needs the interface it is on",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			tc.break_(t, m)
			_, err := parseDoc(t, m)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v, want Errors", err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no error at\n  %s\ncontaining %q; got:\n%v", tc.path, tc.reason, err)
		})
	}
}

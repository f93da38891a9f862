package config

import (
	"net/netip"
	"strings"
	"testing"
)

// TestMembershipRoutesKnob: switchd:membership-routes is send unless set;
// a neighbor takes its peer group's and overrides it with its own.
func TestMembershipRoutesKnob(t *testing.T) {
	m := leafDoc(t)
	filtered := func(t *testing.T) map[string]bool {
		t.Helper()
		in, err := parseDoc(t, m)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, n := range in.BGP.Neighbors {
			out[n.Address.String()] = n.FilterMembership
		}
		return out
	}
	for a, f := range filtered(t) {
		if f {
			t.Errorf("neighbor %s filters membership routes with no setting; the default is send", a)
		}
	}
	at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "config")["switchd:membership-routes"] = "filter"
	at(t, neighbor(t, m, "10.1.2.0"), "config")["switchd:membership-routes"] = "send"
	at(t, neighbor(t, m, "10.2.1.1"), "config")["switchd:membership-routes"] = "filter"
	want := map[string]bool{"10.1.1.0": true, "10.1.2.0": false, "fd00:1:1::": true, "fd00:1:2::": true, "10.2.1.1": true, "fd00:2:1::1": false}
	got := filtered(t)
	for a, w := range want {
		if got[netip.MustParseAddr(a).String()] != w {
			t.Errorf("neighbor %s: filter %v, want %v", a, got[a], w)
		}
	}

	// A value that is neither is refused at its leaf.
	at(t, neighbor(t, m, "10.2.1.1"), "config")["switchd:membership-routes"] = "drop"
	_, err := parseDoc(t, m)
	if want := hostNb + "/config/membership-routes"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("membership-routes drop: error %v, want one at %s", err, want)
	}
}

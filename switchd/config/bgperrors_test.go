package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestBGPRulesReportedOnceAtTheirLeaf checks the mapping of the speaker's
// field errors (bgp.FieldError) to OpenConfig paths: each rule is checked by
// bgp.Validate only, lands on the leaf that gave the value (a peer group's
// when the neighbors inherit it), and a problem is reported once.
func TestBGPRulesReportedOnceAtTheirLeaf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
		total  int // errors in the whole config
	}{{
		// The schema allows 0..4096; the capability has 12 bits.
		name: "global restart-time 4096s",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "global")["graceful-restart"] = map[string]any{"config": map[string]any{"enabled": true, "restart-time": 4096}}
		},
		path:   bgpP + "/global/graceful-restart/config/restart-time",
		reason: "restart-time 1h8m16s: at most 4095s (12 bits in the capability)",
		total:  1,
	}, {
		name: "neighbor restart-time over 4095s",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["graceful-restart"] = map[string]any{"config": map[string]any{"enabled": true, "restart-time": 4096}}
		},
		path:   hostNb + "/graceful-restart/config/restart-time",
		reason: "at most 4095s",
		total:  1,
	}, {
		name: "keepalive in a peer group shared by four neighbors",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "timers", "config")["keepalive-interval"] = 9
		},
		path:   bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/timers/config/keepalive-interval",
		reason: "keepalive-interval 9s must be shorter than hold-time 9s",
		total:  1,
	}, {
		name: "peer-as 0 in a peer group shared by four neighbors",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "config")["peer-as"] = 0
		},
		path:   bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/config/peer-as",
		reason: "peer-as 0 is reserved (RFC 7607)",
		total:  1,
	}, {
		name: "router-id 0.0.0.0",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "global", "config")["router-id"] = "0.0.0.0"
		},
		path:   bgpP + "/global/config/router-id",
		reason: "router-id 0.0.0.0: must be a non-zero IPv4 address",
		total:  1,
	}, {
		name: "local-address of the other family",
		break_: func(t *testing.T, m map[string]any) {
			neighbor(t, m, "10.2.1.1")["transport"] = map[string]any{"config": map[string]any{"local-address": "fd00::1"}}
		},
		path:   hostNb + "/transport/config/local-address",
		reason: "local-address fd00::1: not of the neighbor's address family",
		total:  1,
	}, {
		name: "missing AS, refused by the translation and by the speaker",
		break_: func(t *testing.T, m map[string]any) {
			delete(at(t, bgpTree(t, m), "global", "config"), "as")
		},
		path:   bgpP + "/global/config/as",
		reason: "BGP needs the local AS number",
		total:  1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			es := parseBrokenLeaf(t, tc.break_)
			found := 0
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					found++
				}
			}
			if found != 1 || len(es) != tc.total {
				t.Errorf("want %d error(s), one at\n  %s\ncontaining %q; got:\n%v", tc.total, tc.path, tc.reason, es)
			}
		})
	}
}

// parseBrokenLeaf parses examples/leaf.json broken by break_ and returns
// the errors, failing the test if there are none.
func parseBrokenLeaf(t *testing.T, break_ func(t *testing.T, m map[string]any)) Errors {
	t.Helper()
	m := leafDoc(t)
	break_(t, m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data, "leaf.json")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse: %v, want Errors", err)
	}
	return es
}

package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchd/switchd/switchd/bfd"
)

const staticP = "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=STATIC][name=STATIC]"

// bfdDoc is leaf.json with BFD on the SPINE peer group (100 ms × 3),
// fd00:1:1:: raising its own multiplier to 5, 10.1.2.0 turning it off,
// swp1 (10.1.1.1/31) configured with BFD timers of its own (which the
// group's override) and a static route whose gateway has BFD at 50 ms.
func bfdDoc(t *testing.T) map[string]any {
	m := leafDoc(t)
	at(t, bgpTree(t, m), "peer-groups", "peer-group", 0)["enable-bfd"] = map[string]any{"config": map[string]any{
		"enabled": true, "desired-minimum-tx-interval": 100000, "required-minimum-receive": 100000, "detection-multiplier": 3}}
	neighbor(t, m, "fd00:1:1::")["enable-bfd"] = map[string]any{"config": map[string]any{"detection-multiplier": 5}}
	neighbor(t, m, "10.1.2.0")["enable-bfd"] = map[string]any{"config": map[string]any{"enabled": false}}
	m["openconfig-interfaces:interfaces"] = map[string]any{"interface": []any{map[string]any{
		"name": "swp1", "config": map[string]any{"name": "swp1"},
		"subinterfaces": map[string]any{"subinterface": []any{map[string]any{
			"index": 0, "config": map[string]any{"index": 0},
			"openconfig-if-ip:ipv4": map[string]any{"addresses": map[string]any{"address": []any{map[string]any{
				"ip": "10.1.1.1", "config": map[string]any{"ip": "10.1.1.1", "prefix-length": 31}}}}}}}}}}}
	m["openconfig-bfd:bfd"] = map[string]any{"interfaces": map[string]any{"interface": []any{map[string]any{
		"id": "swp1", "config": map[string]any{"id": "swp1", "desired-minimum-tx-interval": 300000, "detection-multiplier": 4},
		"interface-ref": map[string]any{"config": map[string]any{"interface": "swp1"}}}}}}
	ps := at(t, ni(t, m), "protocols")
	ps["protocol"] = append(ps["protocol"].([]any), map[string]any{
		"identifier": "openconfig-policy-types:STATIC", "name": "STATIC",
		"config": map[string]any{"identifier": "openconfig-policy-types:STATIC", "name": "STATIC"},
		"static-routes": map[string]any{"static": []any{map[string]any{
			"prefix": "192.0.2.0/24", "config": map[string]any{"prefix": "192.0.2.0/24"},
			"next-hops": map[string]any{"next-hop": []any{map[string]any{
				"index": "a", "config": map[string]any{"index": "a", "next-hop": "10.1.1.0"},
				"enable-bfd": map[string]any{"config": map[string]any{"enabled": true, "desired-minimum-tx-interval": 50000}}}}}}}}})
	return m
}

// TestBFDSessions: enable-bfd of a peer group and a neighbor and of a
// static next hop become sessions with timers from the nearest source
// (neighbor, group, /bfd interface), single hop on the interface whose
// subnet holds the peer; a session shared by a neighbor and a static
// next hop with equal timers is one session, and unequal ones are
// refused (the static's 50 ms against the group's 100 ms).
func TestBFDSessions(t *testing.T) {
	m := bfdDoc(t)
	_, err := parseDoc(t, m)
	if err == nil || !strings.Contains(err.Error(), staticP+"/static-routes/static[prefix=192.0.2.0/24]/next-hops/next-hop[index=a]/config/next-hop: BFD session 10.1.1.0 on swp1 is also configured") {
		t.Fatalf("conflicting timers: got %v", err)
	}
	// The static next hop with the group's timers shares the session.
	nh := at(t, ni(t, m), "protocols", "protocol", 2, "static-routes", "static", 0, "next-hops", "next-hop", 0, "enable-bfd", "config")
	nh["desired-minimum-tx-interval"] = 100000
	nh["required-minimum-receive"] = 100000
	nh["detection-multiplier"] = 3
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := []BFDSession{{
		PeerConfig: bfd.PeerConfig{Peer: netip.MustParseAddr("10.1.1.0"), Interface: "swp1", DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms, DetectMult: 3},
		Neighbors:  []netip.Addr{netip.MustParseAddr("10.1.1.0")},
		Static:     true,
	}, {
		PeerConfig: bfd.PeerConfig{Peer: netip.MustParseAddr("fd00:1:1::"), DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms, DetectMult: 5},
		Neighbors:  []netip.Addr{netip.MustParseAddr("fd00:1:1::")},
	}, {
		PeerConfig: bfd.PeerConfig{Peer: netip.MustParseAddr("fd00:1:2::"), DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms, DetectMult: 3},
		Neighbors:  []netip.Addr{netip.MustParseAddr("fd00:1:2::")},
	}}
	if d := cmp.Diff(want, in.BFD, cmpOpts...); d != "" {
		t.Errorf("sessions (-want +got):\n%s", d)
	}

	// Without the group's timers, swp1's apply to the session on it.
	delete(at(t, bgpTree(t, m), "peer-groups", "peer-group", 0), "enable-bfd")
	neighbor(t, m, "10.1.1.0")["enable-bfd"] = map[string]any{"config": map[string]any{"enabled": true}}
	delete(nh, "desired-minimum-tx-interval")
	delete(nh, "required-minimum-receive")
	delete(nh, "detection-multiplier")
	if in, err = parseDoc(t, m); err != nil {
		t.Fatal(err)
	}
	want = []BFDSession{{
		PeerConfig: bfd.PeerConfig{Peer: netip.MustParseAddr("10.1.1.0"), Interface: "swp1", DesiredMinTx: 300 * ms, DetectMult: 4},
		Neighbors:  []netip.Addr{netip.MustParseAddr("10.1.1.0")},
		Static:     true,
	}} // fd00:1:1:: sets a multiplier but does not enable BFD
	if d := cmp.Diff(want, in.BFD, cmpOpts...); d != "" {
		t.Errorf("sessions with the interface's timers (-want +got):\n%s", d)
	}
}

// TestBFDRejects: what the engine refuses lands at the leaf the value
// came from, and an iBGP neighbor without a transport address (a
// multihop session needs it) is refused at that leaf.
func TestBFDRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m map[string]any)
		path   string
		reason string
	}{{
		name: "tx below 10 ms in the group",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "enable-bfd", "config")["desired-minimum-tx-interval"] = 5000
		},
		path:   bgpP + "/peer-groups/peer-group[peer-group-name=SPINE]/enable-bfd/config/desired-minimum-tx-interval",
		reason: "BFD: 5ms is outside 10ms..1m0s",
	}, {
		name: "zero receive interval on the interface",
		break_: func(t *testing.T, m map[string]any) {
			delete(at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "enable-bfd", "config"), "required-minimum-receive")
			at(t, m, "openconfig-bfd:bfd", "interfaces", "interface", 0, "config")["required-minimum-receive"] = 0
		},
		path:   "/bfd/interfaces/interface[id=swp1]/config/required-minimum-receive",
		reason: "0 is reserved",
	}, {
		name: "iBGP multihop without local-address",
		break_: func(t *testing.T, m map[string]any) {
			at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "config")["peer-as"] = 65101
		},
		path:   bgpP + "/neighbors/neighbor[neighbor-address=fd00:1:1::]/transport/config/local-address",
		reason: "a multihop BFD session",
	}, {
		name: "echo is not supported",
		break_: func(t *testing.T, m map[string]any) {
			at(t, m, "openconfig-bfd:bfd", "interfaces", "interface", 0, "config")["desired-min-echo-tx-interval"] = 100000
		},
		path:   "/bfd/interfaces/interface[id=swp1]/config/desired-min-echo-tx-interval",
		reason: "not supported by switchd",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := bfdDoc(t)
			// Without the static next hop's conflicting timers.
			delete(at(t, ni(t, m), "protocols", "protocol", 2, "static-routes", "static", 0, "next-hops", "next-hop", 0), "enable-bfd")
			tc.break_(t, m)
			_, err := parseDoc(t, m)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.path+": "+tc.reason) {
				t.Errorf("got %v\nwant %s: %s", err, tc.path, tc.reason)
			}
		})
	}
}

// TestBFDMultihop: an iBGP neighbor over loopbacks (not in a configured
// subnet) gets a multihop session from its transport address.
func TestBFDMultihop(t *testing.T) {
	m := bfdDoc(t)
	delete(at(t, ni(t, m), "protocols", "protocol", 2, "static-routes", "static", 0, "next-hops", "next-hop", 0), "enable-bfd")
	at(t, bgpTree(t, m), "peer-groups", "peer-group", 0, "config")["peer-as"] = 65101
	for _, a := range []string{"10.1.1.0", "10.1.2.0", "fd00:1:1::", "fd00:1:2::"} {
		neighbor(t, m, a)["transport"] = map[string]any{"config": map[string]any{"local-address": map[bool]string{true: "10.0.0.11", false: "fd00::11"}[!strings.Contains(a, ":")]}}
	}
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bfd.PeerConfig{}
	for _, s := range in.BFD {
		got[s.Peer.String()] = s.PeerConfig
	}
	// 10.1.1.0 is in swp1's subnet: single hop there; the others multihop.
	if c := got["10.1.1.0"]; c.Multihop || c.Interface != "swp1" || c.Local != netip.MustParseAddr("10.0.0.11") {
		t.Errorf("10.1.1.0: %+v", c)
	}
	if c := got["fd00:1:1::"]; !c.Multihop || c.Interface != "" || c.Local != netip.MustParseAddr("fd00::11") {
		t.Errorf("fd00:1:1::: %+v", c)
	}
}

package sim_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

func TestParseTopologyRejects(t *testing.T) {
	const nodes = `
nodes:
  - {name: s1, role: spine, asn: 65000}
  - {name: l1, role: leaf, asn: 65001}
`
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no name", nodes + "links: [[s1, l1]]", "name is missing"},
		{"no nodes", "name: x\nnodes: []", "no nodes"},
		{"unknown field", "name: x\nnodez: []", `unknown field "nodez"`},
		{"unknown node in link", "name: x" + nodes + "links: [[s1, l9]]", `link #1 s1--l9: unknown node "l9"`},
		{"self link", "name: x" + nodes + "links: [[s1, s1]]", "links a node to itself"},
		{"three-node link", "name: x" + nodes + "links: [[s1, l1, s1]]", "want two node names"},
		{"duplicate", "name: x" + nodes + "  - {name: l1, role: leaf, asn: 65002}\n", `node "l1": duplicate name`},
		{"missing asn", "name: x\nnodes: [{name: a, role: leaf}]", `node "a": asn is missing`},
		{"bad role", "name: x\nnodes: [{name: a, role: core, asn: 1}]", `node "a": bad role "core"`},
		{"missing role", "name: x\nnodes: [{name: a, asn: 1}]", `node "a": role is missing`},
		{"bad kind", "name: x\nnodes: [{name: a, role: leaf, asn: 1, kind: quagga}]", `node "a": bad kind "quagga"`},
		{"long name", "name: x\nnodes: [{name: abcdefghijklm, role: leaf, asn: 1}]", `node "abcdefghijklm": name too long`},
		{"bad char", "name: x\nnodes: [{name: a_b, role: leaf, asn: 1}]", `node "a_b": bad character '_'`},
		{"digit first", "name: x\nnodes: [{name: 1a, role: leaf, asn: 1}]", "must start with a letter"},
		{"lo", "name: x\nnodes: [{name: lo, role: leaf, asn: 1}]", "taken by the loopback"},
		{"bad timers", "name: x\ntimers: {hold: 3, keepalive: 5}" + nodes, "keepalive 5"},
		{"bad asn type", "name: x\nnodes: [{name: a, role: leaf, asn: -1}]", "parse topology"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sim.ParseTopology([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseTopology accepted\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseTopologyDefaults(t *testing.T) {
	topo, err := sim.ParseTopology([]byte(`
name: t
nodes:
  - {name: a, role: spine, asn: 65000}
  - {name: b, role: leaf, asn: 65001, kind: bird}
links:
  - {a: a, b: b}
  - [b, a]
`))
	if err != nil {
		t.Fatal(err)
	}
	if topo.Nodes[0].Kind != sim.Switchd || topo.Nodes[1].Kind != sim.Bird {
		t.Errorf("kinds %q %q, want switchd bird", topo.Nodes[0].Kind, topo.Nodes[1].Kind)
	}
	if *topo.Timers != sim.DefaultTimers {
		t.Errorf("timers %+v, want %+v", *topo.Timers, sim.DefaultTimers)
	}
	if topo.Links[0] != (sim.Link{A: "a", B: "b"}) || topo.Links[1] != (sim.Link{A: "b", B: "a"}) {
		t.Errorf("links %v", topo.Links)
	}
}

func TestDefaultTopology(t *testing.T) {
	topo := sim.Default()
	asn := map[string]uint32{}
	role := map[string]sim.Role{}
	for _, n := range topo.Nodes {
		asn[n.Name], role[n.Name] = n.ASN, n.Role
	}
	if asn["spine1"] != asn["spine2"] {
		t.Errorf("spines in different ASes %d %d", asn["spine1"], asn["spine2"])
	}
	seen := map[uint32]string{}
	for _, n := range topo.Nodes {
		if n.Role == sim.Spine {
			continue
		}
		if o, ok := seen[n.ASN]; ok {
			t.Errorf("%s and %s share AS %d", n.Name, o, n.ASN)
		}
		seen[n.ASN] = n.Name
	}
	peers := map[string][]string{}
	for _, l := range topo.Links {
		peers[l.A] = append(peers[l.A], l.B)
		peers[l.B] = append(peers[l.B], l.A)
	}
	var hosts, leaves int
	for name, r := range role {
		switch r {
		case sim.Host:
			hosts++
			if len(peers[name]) != 1 || role[peers[name][0]] != sim.Leaf {
				t.Errorf("host %s linked to %v, want one leaf", name, peers[name])
			}
		case sim.Leaf:
			leaves++
			var spines int
			for _, p := range peers[name] {
				if role[p] == sim.Spine {
					spines++
				}
			}
			if spines != 2 || len(peers[name]) != 4 {
				t.Errorf("leaf %s linked to %v, want both spines and two hosts", name, peers[name])
			}
		}
	}
	if hosts != 4 || leaves != 2 {
		t.Errorf("%d hosts, %d leaves; want 4, 2", hosts, leaves)
	}
}

func TestAddressing(t *testing.T) {
	topo, err := sim.ParseTopology([]byte(`
name: t
nodes:
  - {name: spine-a, role: spine, asn: 65000}
  - {name: leaf-b, role: leaf, asn: 65001}
  - {name: abcdefghijkl, role: host, asn: 65002}
links:
  - [leaf-b, spine-a]
  - [leaf-b, spine-a]
  - [abcdefghijkl, leaf-b]
`))
	if err != nil {
		t.Fatal(err)
	}
	f, err := sim.New(topo, sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	if v4, v6 := f.Loopbacks("leaf-b"); v4 != netip.MustParseAddr("10.255.0.2") || v6 != netip.MustParseAddr("fd00:255::2") {
		t.Errorf("leaf-b loopbacks %v %v", v4, v6)
	}
	leaf := f.Node("leaf-b")
	if leaf.RouterID != netip.MustParseAddr("10.255.0.2") || leaf.Namespace != "swdtest-leaf-b" {
		t.Errorf("leaf-b router-id %v namespace %s", leaf.RouterID, leaf.Namespace)
	}
	type end struct {
		name, peer, a4, a6, p4, p6 string
	}
	var got []end
	for _, i := range leaf.Interfaces {
		got = append(got, end{i.Name, i.Peer, i.Addr4.String(), i.Addr6.String(), i.Peer4.String(), i.Peer6.String()})
	}
	want := []end{
		{"spine-a", "spine-a", "10.254.0.0/31", "fd00:254::/127", "10.254.0.1", "fd00:254::1"},
		{"spine-a_2", "spine-a", "10.254.0.2/31", "fd00:254::2/127", "10.254.0.3", "fd00:254::3"},
		{"abcdefghijkl", "abcdefghijkl", "10.254.0.5/31", "fd00:254::5/127", "10.254.0.4", "fd00:254::4"},
	}
	if len(got) != len(want) {
		t.Fatalf("leaf-b interfaces %+v, want %+v", got, want)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("leaf-b interface %d: %+v, want %+v", k, got[k], want[k])
		}
	}
	for _, n := range f.Nodes() {
		for _, i := range n.Interfaces {
			if len(i.Name) > 15 {
				t.Errorf("%s: interface name %q longer than 15 bytes", n.Name, i.Name)
			}
		}
	}
	// Same topology, same plan.
	f2, _ := sim.New(topo, sim.Options{Prefix: "swdtest"})
	a, _ := json.Marshal(f.Nodes())
	b, _ := json.Marshal(f2.Nodes())
	if string(a) != string(b) {
		t.Errorf("two plans of one topology differ:\n%s\n%s", a, b)
	}
}

func TestAddressingManyNodes(t *testing.T) {
	topo := &sim.Topology{Name: "big"}
	for i := range 300 {
		topo.Nodes = append(topo.Nodes, sim.Node{Name: "n" + string(rune('a'+i/26%26)) + string(rune('a'+i%26)) + string(rune('a'+i/676)), Role: sim.Leaf, ASN: uint32(65000 + i)})
	}
	for i := 1; i < 300; i++ {
		topo.Links = append(topo.Links, sim.Link{A: topo.Nodes[0].Name, B: topo.Nodes[i].Name})
	}
	f, err := sim.New(topo, sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	if v4, v6 := f.Loopbacks(topo.Nodes[299].Name); v4 != netip.MustParseAddr("10.255.1.44") || v6 != netip.MustParseAddr("fd00:255::12c") {
		t.Errorf("loopbacks of node 300: %v %v", v4, v6)
	}
	last := f.Node(topo.Nodes[299].Name).Interfaces[0]
	if last.Addr4 != netip.MustParsePrefix("10.254.2.85/31") {
		t.Errorf("link 299: %v, want 10.254.2.85/31", last.Addr4)
	}
}

// get walks a decoded RFC 7951 tree: a string step names a member, a
// map step picks the list entry whose members match it.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, step := range path {
		switch s := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %q: not an object: %v", s, v)
			}
			if v, ok = m[s]; !ok {
				t.Fatalf("no member %q in %v", s, keys(m))
			}
		case map[string]any:
			l, ok := v.([]any)
			if !ok {
				t.Fatalf("at %v: not a list: %v", s, v)
			}
			var found any
			for _, e := range l {
				em := e.(map[string]any)
				match := true
				for k, want := range s {
					if em[k] != want {
						match = false
					}
				}
				if match {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("no list entry %v in %v", s, l)
			}
			v = found
		}
	}
	return v
}

func keys(m map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

func TestNodeConfig(t *testing.T) {
	f, err := sim.New(sim.Default(), sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.NodeConfig("leaf1")
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, b)
	}
	type m = map[string]any
	// The node's addresses are in /interfaces (switchd applies them): its
	// loopbacks on lo, the /31 and /127 of each link.
	ifs := tree["openconfig-interfaces:interfaces"]
	lo := get(t, ifs, "interface", m{"name": "lo"}, "subinterfaces", "subinterface", m{"index": 0.0})
	get(t, lo, "openconfig-if-ip:ipv4", "addresses", "address", m{"ip": "10.255.0.3"})
	get(t, lo, "openconfig-if-ip:ipv6", "addresses", "address", m{"ip": "fd00:255::3"})
	up := get(t, ifs, "interface", m{"name": "spine1"}, "subinterfaces", "subinterface", m{"index": 0.0})
	if l := get(t, up, "openconfig-if-ip:ipv4", "addresses", "address", m{"ip": "10.254.0.0"}, "config", "prefix-length"); l != 31.0 {
		t.Errorf("leaf1's address to spine1: prefix length %v, want 31", l)
	}
	get(t, up, "openconfig-if-ip:ipv6", "addresses", "address", m{"ip": "fd00:254::"})

	ni := get(t, tree, "openconfig-network-instance:network-instances", "network-instance", m{"name": "DEFAULT"})
	if typ := get(t, ni, "config", "type"); typ != "openconfig-network-instance-types:DEFAULT_INSTANCE" {
		t.Errorf("network-instance type %v", typ)
	}
	bgp := get(t, ni, "protocols", "protocol", m{"identifier": "openconfig-policy-types:BGP"}, "bgp")
	if as := get(t, bgp, "global", "config", "as"); as != 65001.0 {
		t.Errorf("global as %v", as)
	}
	if id := get(t, bgp, "global", "config", "router-id"); id != "10.255.0.3" {
		t.Errorf("router-id %v", id)
	}
	if v := get(t, bgp, "global", "use-multiple-paths", "ebgp", "config", "allow-multiple-as"); v != true {
		t.Errorf("allow-multiple-as %v", v)
	}
	nbrs := get(t, bgp, "neighbors", "neighbor").([]any)
	if len(nbrs) != 8 { // 2 spines + 2 hosts, IPv4 and IPv6 each
		t.Errorf("%d neighbors, want 8", len(nbrs))
	}
	n4 := get(t, nbrs, m{"neighbor-address": "10.254.0.1"})
	if as := get(t, n4, "config", "peer-as"); as != 65000.0 {
		t.Errorf("spine1 peer-as %v", as)
	}
	if h := get(t, n4, "timers", "config", "hold-time"); h != 9.0 {
		t.Errorf("hold-time %v", h)
	}
	get(t, n4, "afi-safis", "afi-safi", m{"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST"})
	n6 := get(t, nbrs, m{"neighbor-address": "fd00:254::1"})
	get(t, n6, "afi-safis", "afi-safi", m{"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST"})
	// Policies are explicit (switchd's default is REJECT_ROUTE).
	if p := get(t, n4, "apply-policy", "config", "default-export-policy"); p != "ACCEPT_ROUTE" {
		t.Errorf("export policy to spine1 %v", p)
	}

	agg := get(t, ni, "protocols", "protocol", m{"identifier": "openconfig-policy-types:LOCAL_AGGREGATE"}, "local-aggregates", "aggregate")
	get(t, agg, m{"prefix": "10.255.0.3/32"})
	get(t, agg, m{"prefix": "fd00:255::3/128"})
	for _, af := range []string{"openconfig-types:IPV4", "openconfig-types:IPV6"} {
		get(t, ni, "table-connections", "table-connection", m{
			"src-protocol": "openconfig-policy-types:LOCAL_AGGREGATE", "dst-protocol": "openconfig-policy-types:BGP", "address-family": af})
	}

	if _, err := f.NodeConfig("nosuch"); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("NodeConfig of an unknown node: %v", err)
	}
}

// TestBirdConfigParses has BIRD itself check every generated bird.conf.
func TestBirdConfigParses(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("bird not installed")
	}
	topo := sim.Default()
	for i := range topo.Nodes {
		topo.Nodes[i].Kind = sim.Bird
	}
	f, err := sim.New(topo, sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range f.Nodes() {
		b, err := f.BirdConfig(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"router id " + n.RouterID.String() + ";", "net = " + n.Loopback4.String() + "/32"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: bird.conf lacks %q", n.Name, want)
			}
		}
		p := filepath.Join(dir, n.Name+".conf")
		os.WriteFile(p, b, 0o644)
		if out, err := exec.Command("bird", "-p", "-c", p).CombinedOutput(); err != nil {
			t.Errorf("%s: bird -p: %v: %s\n%s", n.Name, err, out, b)
		}
	}
}

// TestNodeConfigsParse checks every generated switchd config with
// switchd's own config loader, and what the fabric-wide settings become:
// graceful restart everywhere, one passive end per session, host ranges
// as IPAM pools on the host and as its leaf's import filter.
func TestNodeConfigsParse(t *testing.T) {
	f, err := sim.New(sim.Default(), sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	h1 := f.Node("host1")
	if h1.Workload4 != netip.MustParsePrefix("10.100.1.0/24") || h1.Workload6 != netip.MustParsePrefix("fd00:100:1::/64") {
		t.Errorf("host1 workload ranges %v %v", h1.Workload4, h1.Workload6)
	}
	if w := f.Node("host4").Workload4; w != netip.MustParsePrefix("10.100.4.0/24") {
		t.Errorf("host4 IPv4 range %v", w)
	}
	if f.Node("leaf1").Workload4.IsValid() {
		t.Errorf("a leaf has a workload range")
	}
	intents := map[string]*config.Intent{}
	for _, n := range f.Nodes() {
		in := nodeIntent(t, f, n.Name)
		if err := bgp.Validate(in.BGP); err != nil {
			t.Fatalf("%s: bgp config rejected: %v", n.Name, err)
		}
		if gr := in.BGP.GracefulRestart; !gr.Enabled || gr.RestartTime != sim.RestartTime*time.Second || gr.HelperOnly != (n.Role == sim.Spine) {
			t.Errorf("%s: graceful restart %+v", n.Name, gr)
		}
		intents[n.Name] = in
	}
	passive := func(node, peer string) bool {
		for _, nb := range intents[node].BGP.Neighbors {
			if nb.Description == peer {
				return nb.Passive
			}
		}
		t.Fatalf("%s has no neighbor %s", node, peer)
		return false
	}
	for _, pair := range [][2]string{{"leaf1", "spine1"}, {"leaf1", "host1"}, {"leaf2", "host4"}} {
		if passive(pair[0], pair[1]) || !passive(pair[1], pair[0]) {
			t.Errorf("%s-%s: want the leaf active and the other end passive", pair[0], pair[1])
		}
	}
	var pools []netip.Prefix
	for _, p := range intents["host1"].Workloads.Pools {
		pools = append(pools, p.Prefix)
	}
	if !slices.Equal(pools, []netip.Prefix{h1.Workload4, h1.Workload6}) {
		t.Errorf("host1 pools %v", pools)
	}
	for _, nb := range intents["leaf1"].BGP.Neighbors {
		switch nb.Description {
		case "host1":
			if !slices.Equal(nb.Import.Policies, []string{"from-host1"}) || nb.Import.Default != bgp.Reject {
				t.Errorf("leaf1's import chain for %v = %+v", nb.Address, nb.Import)
			}
		case "spine1", "spine2":
			if len(nb.Import.Policies) != 0 || nb.Import.Default != bgp.Accept {
				t.Errorf("leaf1 filters spine neighbor %v: %+v", nb.Address, nb.Import)
			}
		}
	}
	// A host announces only its own prefixes (no transit).
	for _, nb := range intents["host1"].BGP.Neighbors {
		if !slices.Equal(nb.Export.Policies, []string{"own-prefixes"}) || nb.Export.Default != bgp.Reject || nb.Import.Default != bgp.Accept {
			t.Errorf("host1's chains for %v: import %+v export %+v", nb.Address, nb.Import, nb.Export)
		}
	}
	for _, ps := range intents["leaf1"].BGP.PrefixSets {
		if ps.Name != "host-host1" {
			continue
		}
		want := []bgp.PrefixRange{
			{Prefix: netip.MustParsePrefix("10.100.1.0/24"), MinLen: 24, MaxLen: 32},
			{Prefix: netip.MustParsePrefix("10.255.0.5/32"), MinLen: 32, MaxLen: 32},
			{Prefix: netip.MustParsePrefix("fd00:100:1::/64"), MinLen: 64, MaxLen: 128},
			{Prefix: netip.MustParsePrefix("fd00:255::5/128"), MinLen: 128, MaxLen: 128},
		}
		if !slices.Equal(ps.Prefixes, want) {
			t.Errorf("host-host1 prefix set %v, want %v", ps.Prefixes, want)
		}
		return
	}
	t.Errorf("leaf1 has no prefix set host-host1: %v", intents["leaf1"].BGP.PrefixSets)
}

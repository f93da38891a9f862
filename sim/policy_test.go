package sim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchd/switchd/sim"
)

// TestPolicyTopology loads topologies/policy.yaml: its policy file is read
// relative to the topology, merged into every host's config beside the
// IPAM pools (switchd's own loader accepts it) and into no other node's.
func TestPolicyTopology(t *testing.T) {
	topo, err := sim.LoadTopology("topologies/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if topo.PolicyTree == nil {
		t.Fatal("policy.yaml: PolicyTree not read from its policy file")
	}
	if got := topo.Nodes[5].Workloads["w1"]["role"]; topo.Nodes[5].Name != "host2" || got != "db" {
		t.Errorf("host2 w1 role %q, want db", got)
	}
	f, err := sim.New(topo, sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		in := nodeIntent(t, f, n.Name)
		pols := len(in.Policy.Policies)
		if n.Role == sim.Host {
			if pols != 1 || in.Policy.Policies[0].Name != "db" || !in.Policy.Policies[0].SelectsIngress {
				t.Errorf("%s: policies %+v, want the example's ingress policy db", n.Name, in.Policy.Policies)
			}
			if len(in.Workloads.Pools) != 2 {
				t.Errorf("%s: %d IPAM pools after the merge, want 2", n.Name, len(in.Workloads.Pools))
			}
		} else if pols != 0 {
			t.Errorf("%s (%s): %d workload policies, want none off hosts", n.Name, n.Role, pols)
		}
	}
}

func TestPolicyTopologyRejects(t *testing.T) {
	dir := t.TempDir()
	const base = "name: x\nnodes:\n  - {name: l1, role: leaf, asn: 65001%s}\n  - {name: h1, role: host, asn: 65101%s}\n"
	for _, tc := range []struct {
		name, leaf, host, extra, want string
	}{
		{"labels on a leaf", ", workloads: {w1: {role: web}}", "", "", `node "l1": workloads: only switchd hosts`},
		{"bad workload name", "", ", workloads: {w_1: {role: web}}", "", `node "h1": workload "w_1": bad character`},
		{"empty label key", "", `, workloads: {w1: {"": web}}`, "", `node "h1": workload "w1": empty label key`},
		{"missing policy file", "", "", "policy: nosuch.yaml\n", "nosuch.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "t.yaml")
			y := strings.Replace(strings.Replace(base, "%s", tc.leaf, 1), "%s", tc.host, 1) + tc.extra
			if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := sim.LoadTopology(p)
			if err == nil {
				t.Fatalf("LoadTopology accepted\n%s", y)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

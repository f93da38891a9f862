package sim_test

import (
	"fmt"
	"testing"

	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/switchd/config"
)

// TestScalePolicy checks a generated fabric's policy: every host's config
// with it is accepted with no group warning (each peer selector is a
// group's, so remote members match), default DENY, one ingress policy per
// group and one egress policy; every host's workloads are labelled into
// groups that together span every rack; and the allow relation is each
// group's own and the next one's.
func TestScalePolicy(t *testing.T) {
	const groups, perHost = 5, 3
	topo, err := sim.ScaleTopology(sim.Scale{Hosts: 8, Leaves: 4, PolicyGroups: groups, Workloads: perHost})
	if err != nil {
		t.Fatal(err)
	}
	f, err := sim.New(topo, sim.Options{Prefix: "swdtest"})
	if err != nil {
		t.Fatal(err)
	}
	racksOf := map[string]map[string]bool{} // group: leaves above its members
	for _, n := range f.Nodes() {
		in := nodeIntent(t, f, n.Name)
		if n.Role != sim.Host {
			if len(in.Policy.Policies) != 0 {
				t.Errorf("%s: %d policies, want none off hosts", n.Name, len(in.Policy.Policies))
			}
			continue
		}
		if w := config.GroupWarnings(in); len(w) > 0 {
			t.Errorf("%s: group warnings: %v", n.Name, w)
		}
		if in.Policy.Default != policy.Deny || len(in.Groups) != groups || len(in.Policy.Policies) != groups+1 {
			t.Fatalf("%s: default %v, %d groups, %d policies; want DENY, %d, %d",
				n.Name, in.Policy.Default, len(in.Groups), len(in.Policy.Policies), groups, groups+1)
		}
		for _, p := range in.Policy.Policies {
			in, eg := p.Name != "egress", p.Name == "egress"
			if p.SelectsIngress != in || p.SelectsEgress != eg {
				t.Errorf("%s: policy %s selects ingress %v, egress %v", n.Name, p.Name, p.SelectsIngress, p.SelectsEgress)
			}
			if in && len(p.Ingress) != 6 {
				t.Errorf("%s: policy %s: %d ingress rules, want 6 (ICMP, ICMPv6, TCP from two groups)", n.Name, p.Name, len(p.Ingress))
			}
		}
		if len(n.Workloads) != perHost {
			t.Fatalf("%s: labels for %d workloads, want %d", n.Name, len(n.Workloads), perHost)
		}
		for w, l := range n.Workloads {
			g := l[sim.ScaleGroupLabel]
			if g == "" {
				t.Fatalf("%s/%s: no %s label", n.Name, w, sim.ScaleGroupLabel)
			}
			if racksOf[g] == nil {
				racksOf[g] = map[string]bool{}
			}
			racksOf[g][n.Interfaces[0].Peer] = true
		}
	}
	if len(racksOf) != groups {
		t.Errorf("workloads in %d groups, want %d", len(racksOf), groups)
	}
	for g, leaves := range racksOf {
		if len(leaves) < 2 {
			t.Errorf("group %s in one rack only (%v)", g, leaves)
		}
	}

	w := func(g int) sim.Workload { return sim.Workload{Labels: fmt.Sprintf("grp=g%d,sim-host=h", g)} }
	for _, tc := range []struct {
		from, to int
		want     bool
	}{{1, 1, true}, {2, 1, true}, {1, 2, false}, {1, groups, true}, {groups, 1, false}, {3, 1, false}} {
		if got := sim.ScaleAllowed(w(tc.from), w(tc.to), groups); got != tc.want {
			t.Errorf("g%d to g%d allowed %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	if sim.ScaleAllowed(sim.Workload{Labels: "sim-host=h"}, w(1), groups) {
		t.Error("an unlabelled workload is allowed")
	}
}

// nodeIntent is node's generated config as switchd parses it; a config
// switchd refuses fails the test.
func nodeIntent(t *testing.T, f *sim.Fabric, node string) *config.Intent {
	t.Helper()
	b, err := f.NodeConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	in, err := config.Parse(b, node+".json")
	if err != nil {
		t.Fatalf("%s: generated config rejected:\n%v", node, err)
	}
	return in
}

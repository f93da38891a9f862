package sim

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// TestScaleTopology checks the generator's sizing and wiring: every host
// dual-homed to the two leaves of its rack, every leaf to every spine,
// racks as even as the count allows, and the plan valid (addresses,
// names) up to 500 hosts.
func TestScaleTopology(t *testing.T) {
	for _, tc := range []struct {
		s                     Scale
		leaves, spines, links int
	}{
		{Scale{Hosts: 1}, 2, 2, 2*2 + 2},
		{Scale{Hosts: 50}, 6, 2, 6*2 + 100},
		{Scale{Hosts: 500}, 50, 5, 50*5 + 1000},
		{Scale{Hosts: 7, Leaves: 4, Spines: 3}, 4, 3, 4*3 + 14},
	} {
		topo, err := ScaleTopology(tc.s)
		if err != nil {
			t.Fatalf("%+v: %v", tc.s, err)
		}
		count := map[Role]int{}
		for _, n := range topo.Nodes {
			count[n.Role]++
		}
		if count[Host] != tc.s.Hosts || count[Leaf] != tc.leaves || count[Spine] != tc.spines || len(topo.Links) != tc.links {
			t.Errorf("%+v: %v nodes by role, %d links; want %d hosts, %d leaves, %d spines, %d links",
				tc.s, count, len(topo.Links), tc.s.Hosts, tc.leaves, tc.spines, tc.links)
		}
		f, err := New(topo, Options{Prefix: "swdtest", RunDir: "/tmp/x"})
		if err != nil {
			t.Fatalf("%+v: plan: %v", tc.s, err)
		}
		perRack := map[string]int{}
		for _, n := range f.Nodes() {
			switch n.Role {
			case Host:
				if len(n.Interfaces) != 2 {
					t.Fatalf("%s: %d links, want 2 (dual-homed)", n.Name, len(n.Interfaces))
				}
				a, b := f.Node(n.Interfaces[0].Peer), f.Node(n.Interfaces[1].Peer)
				if a.Role != Leaf || b.Role != Leaf || (a.Index-tc.spines+1)/2 != (b.Index-tc.spines+1)/2 || a == b {
					t.Errorf("%s: homed to %s and %s, want the two leaves of one rack", n.Name, a.Name, b.Name)
				}
				perRack[a.Name]++
			case Leaf:
				if sp := len(n.Interfaces) - perRackHosts(f, n); sp != tc.spines {
					t.Errorf("%s: %d spine links, want %d", n.Name, sp, tc.spines)
				}
			}
		}
		lo, hi := tc.s.Hosts, 0
		for _, c := range perRack {
			lo, hi = min(lo, c), max(hi, c)
		}
		if hi-lo > 1 {
			t.Errorf("%+v: racks hold %d to %d hosts, want them even", tc.s, lo, hi)
		}
	}
	for _, bad := range []Scale{{Hosts: 0}, {Hosts: 4, Leaves: 3}, {Hosts: 2, Leaves: 6}} {
		if _, err := ScaleTopology(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func perRackHosts(f *Fabric, leaf *NodeInfo) int {
	n := 0
	for _, i := range leaf.Interfaces {
		if f.Node(i.Peer).Role == Host {
			n++
		}
	}
	return n
}

func TestRackOf(t *testing.T) {
	got := ""
	for h := 1; h <= 7; h++ {
		got += fmt.Sprint(rackOf(h, 7, 3))
	}
	if got != "1112233" {
		t.Errorf("7 hosts over 3 racks: %s, want 1112233", got)
	}
}

// TestNotConvergedLine checks sim status's last line names what is not
// converged, at most five nodes.
func TestNotConvergedLine(t *testing.T) {
	var st []NodeStatus
	for i := 1; i <= 8; i++ {
		st = append(st, NodeStatus{Name: fmt.Sprintf("host%d", i), Running: true, SessionsUp: 4, SessionsTotal: 4})
	}
	st[1].SessionsUp = 2
	st[2].Running = false
	for i := 3; i < 8; i++ {
		st[i].Missing = make([]netip.Prefix, i)
	}
	got := notConvergedLine(st)
	want := "not converged: 7 of 8 nodes: host2 (sessions 2/4 up), host3 (not running), host4 (3 loopbacks unreachable), host5 (4 loopbacks unreachable), host6 (5 loopbacks unreachable), ..."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if Converged(st[:1]) != true || strings.Contains(notConvergedLine(st[:1]), "host1") {
		t.Errorf("a converged node is listed: %q", notConvergedLine(st[:1]))
	}
}

package bgp

import (
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
)

// TestLoopCheckIsImportPolicy: GoBGP's own AS-loop check is off on every
// neighbor and the import policy rejects a path holding the local AS of
// its session instead, first thing: GoBGP withdraws what a policy rejects,
// but keeps the previous path when its own check rejects (loop.go).
func TestLoopCheckIsImportPolicy(t *testing.T) {
	c := goodConfig()
	c.Neighbors[1].LocalAS = 65100 // fd00::2 peers as 65100
	d, err := validate(c)
	if err != nil {
		t.Fatal(err)
	}
	imp := d.policy.policies[0]
	if imp.Name != importPolicyName || len(imp.Statements) != 2 {
		t.Fatalf("import policy %v, want two loop statements", imp)
	}
	for i, want := range []struct{ name, nset, member string }{
		{"loop/65001", "loop/65001/neighbors", "10.0.0.2/32"},
		{"loop/65100", "loop/65100/neighbors", "fd00::2/128"},
	} {
		st := imp.Statements[i]
		if st.Name != want.name || st.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_REJECT ||
			st.Conditions.AsPathSet.GetName() != want.name || st.Conditions.NeighborSet.GetName() != want.nset {
			t.Errorf("statement %d = %v, want %s: reject on its AS-path set for %s", i, st, want.name, want.nset)
		}
		for _, ds := range d.policy.sets {
			if ds.Name == want.nset && !slices.Equal(ds.List, []string{want.member}) {
				t.Errorf("neighbor set %s = %v, want [%s]", ds.Name, ds.List, want.member)
			}
			if ds.Name == want.name && ds.List[0] != "_"+want.name[len("loop/"):]+"_" {
				t.Errorf("AS-path set %s = %v, want the AS_SEQUENCE match first", ds.Name, ds.List)
			}
		}
	}
	for _, n := range d.neighbors {
		if p := neighborAPI(n, false, 0); p.Conf.AllowOwnAsn != allowOwnASOff {
			t.Errorf("neighbor %v: allow-own-as %d, want %d (GoBGP's check off)", n.Address, p.Conf.AllowOwnAsn, allowOwnASOff)
		}
	}

	// Without local-as overrides one statement guards every session.
	d, err = validate(goodConfig())
	if err != nil {
		t.Fatal(err)
	}
	if sts := d.policy.policies[0].Statements; len(sts) != 1 || sts[0].Conditions.NeighborSet != nil {
		t.Errorf("import statements %v, want one loop statement without a neighbor condition", sts)
	}
}

package daemon

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

// withGroup adds group web (id 10, role == "web": the selector the db
// policy's rule names) to a testConfig's JSON.
func withGroup(t *testing.T, b []byte) []byte {
	t.Helper()
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	wp := tree["switchd:switchd"].(map[string]any)["workload-policy"].(map[string]any)
	wp["groups"] = map[string]any{"group": []any{map[string]any{"name": "web",
		"config": map[string]any{"name": "web", "id": 10, "selector": `role == "web"`}}}}
	out, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// membershipRoute is a learned membership route of addr in groups ids.
func membershipRoute(p, nh string, ids ...uint32) bgp.Route {
	r := route(p, nh)
	c := &bgp.Communities{Large: []bgp.LargeCommunity{{Global: 65002, Local1: 0, Local2: bgp.MembershipMarker}}}
	for _, id := range ids {
		c.Large = append(c.Large, bgp.LargeCommunity{Global: 65002, Local1: id})
	}
	r.Paths = []bgp.Path{{NextHop: r.NextHops[0], Communities: c}}
	return r
}

func hasCall(calls []string, prefix string) bool {
	return slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// TestWiringGroupMembership: a local endpoint in group web is announced
// by SetMembership; a learned membership route fills the group's policy
// set under its selector and never reaches the FIB, while an ordinary
// route beside it does; a withdrawal empties the set; relabelling the
// local endpoint out of the group withdraws its membership.
func TestWiringGroupMembership(t *testing.T) {
	cfg := testConfig{neighbors: []string{"10.0.1.1"}, dbPort: 5432}
	w := startWired(t, cfg, nil)
	w.reload(t, withGroup(t, cfg.json()))

	m := w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointAdded, "c2/eth0", "swd4d5e6f", "10.1.0.3", "fd00:1::3", map[string]string{"role": "web"}))
	calls := w.rec.waitFor(t, m, "SetMembership", func(c []string) bool { return hasCall(c, "bgp.SetMembership") })
	if want := "bgp.SetMembership map[10.1.0.3/32:[10] fd00:1::3/128:[10]]"; !slices.Contains(calls, want) {
		t.Errorf("web endpoint added: calls %q, want %q", calls, want)
	}

	pm, m := w.pe.rec.mark(), w.rec.mark()
	w.sp.learn(2, nil, membershipRoute("10.2.0.7/32", "10.0.1.1", 10), route("10.9.0.0/24", "10.0.1.1"))
	w.pe.rec.waitFor(t, pm, "SetMembers", func(c []string) bool { return hasCall(c, "policy.SetMembers") })
	if want := `policy.SetMembers bgp-group:web role == "web" [10.2.0.7]`; !slices.Contains(w.pe.rec.since(pm), want) {
		t.Errorf("membership learned: policy calls %q, want %q", w.pe.rec.since(pm), want)
	}
	calls = w.rec.waitFor(t, m, "the ordinary route", func(c []string) bool { return slices.Contains(c, "fib.SetRoute 10.9.0.0/24") })
	if slices.Contains(calls, "fib.SetRoute 10.2.0.7/32") {
		t.Errorf("a membership route reached the FIB: %q", calls)
	}

	// Once the engine has the group, a change is told as that change.
	pm = w.pe.rec.mark()
	w.sp.learn(2, nil, membershipRoute("10.2.0.8/32", "10.0.1.1", 10), membershipRoute("10.2.0.9/32", "10.0.1.1", 20))
	w.pe.rec.waitFor(t, pm, "AddMembers", func(c []string) bool {
		return slices.Contains(c, `policy.AddMembers bgp-group:web role == "web" [10.2.0.8]`)
	})
	pm = w.pe.rec.mark()
	w.sp.learn(2, nil, route("10.2.0.7/32"), route("10.2.0.8/32"))
	w.pe.rec.waitFor(t, pm, "RemoveMembers", func(c []string) bool {
		return slices.Contains(c, `policy.RemoveMembers bgp-group:web role == "web" [10.2.0.7 10.2.0.8]`)
	})
	if hasCall(w.pe.rec.since(pm), "policy.SetMembers") {
		t.Errorf("withdrawals gave the group whole: %q", w.pe.rec.since(pm))
	}

	m = w.rec.mark()
	w.eps.publish(endpointEvent(host.EndpointUpdated, "c2/eth0", "swd4d5e6f", "10.1.0.3", "fd00:1::3", map[string]string{"role": "db"}))
	w.rec.waitFor(t, m, "SetMembership", func(c []string) bool { return slices.Contains(c, "bgp.SetMembership map[]") })
}

// TestWholeGroupsOnlyWhereNeeded: after the first giving, a change costs
// no pass over the learned routes, even with a group that has no members
// (the engine never had it).
func TestWholeGroupsOnlyWhereNeeded(t *testing.T) {
	web := config.Group{Name: "web", ID: 10, Selector: policy.MustParseSelector(`role == "web"`)}
	db := config.Group{Name: "db", ID: 20, Selector: policy.MustParseSelector(`role == "db"`)}
	want := map[string]config.Group{membershipSource(web): web, membershipSource(db): db}
	var g groupMembers
	g.setGroups([]config.Group{web, db})
	g.take(membershipRoute("10.2.0.7/32", "10.0.1.1", 10))
	if got := g.wholeGroups(want); len(got) != 2 || !slices.Equal(got[10], []netip.Addr{netip.MustParseAddr("10.2.0.7")}) {
		t.Fatalf("after a change of groups: whole %v, want both, web with 10.2.0.7", got)
	}
	// What applyMembership does once the engine took web.
	g.given = map[string]policy.Selector{membershipSource(web): web.Selector}
	g.allDirty = false
	clear(g.delta)
	g.take(membershipRoute("10.2.0.8/32", "10.0.1.1", 10))
	if got := g.wholeGroups(want); len(got) != 0 {
		t.Errorf("a join of a given group, db memberless: whole %v, want none", got)
	}
	if d := g.delta[10]; len(d) != 1 || !d[netip.MustParseAddr("10.2.0.8")] {
		t.Errorf("delta of web %v, want 10.2.0.8 joining", d)
	}
	g.take(membershipRoute("10.2.0.9/32", "10.0.1.1", 20))
	if got := g.wholeGroups(want); len(got) != 1 || len(got[20]) != 1 {
		t.Errorf("db's first member: whole %v, want db alone with it", got)
	}
}

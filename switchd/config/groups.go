package config

import (
	"fmt"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/policy"
)

// Group is a group whose membership BGP carries
// (/switchd/workload-policy/groups): the endpoints its selector matches,
// on every host, known by its ID (the middle of its large community).
type Group struct {
	Name     string
	ID       uint32
	Selector policy.Selector
}

// groups translates /switchd/workload-policy/groups. An ID must be set,
// not 0 (the marker's) and unique, since it alone names the group on the
// wire; a selector must parse.
func (t *translator) groups(wp *oc.Switchd_WorkloadPolicy) []Group {
	var out []Group
	byID := map[uint32]string{}
	for _, name := range sortedKeys(wp.Group) {
		g := wp.Group[name]
		cfg := wpPath.child("groups").entry("group", []kv{{"name", name}}).child("config")
		before := len(t.list)
		grp := Group{Name: name, ID: g.GetId()}
		switch other, dup := byID[grp.ID]; {
		case grp.ID == 0:
			t.add(cfg.child("id"), "a group needs an id other than 0 (0 is the membership marker's)")
		case dup:
			t.add(cfg.child("id"), fmt.Sprintf("id %d is group %s's too", grp.ID, other))
		default:
			byID[grp.ID] = name
		}
		if g.Selector == nil {
			t.add(cfg.child("selector"), "a group needs a selector")
		} else if sel, err := policy.ParseSelector(*g.Selector); err != nil {
			t.add(cfg.child("selector"), err.Error())
		} else {
			grp.Selector = sel
		}
		if len(t.list) == before {
			out = append(out, grp)
		}
	}
	return out
}

// GroupWarnings are `switchd check`'s warnings about groups: a rule's peer
// selector that is no declared group's selector matches this host's
// endpoints (and the config's network sets) only, never a workload on
// another host, which is rarely what a fabric-wide policy means.
func GroupWarnings(in *Intent) []string {
	groups := map[string]bool{}
	for _, g := range in.Groups {
		groups[g.Selector.String()] = true
	}
	var out []string
	for _, p := range in.Policy.Policies {
		for _, dir := range []struct {
			list, entry string
			rules       []policy.Rule
		}{{"ingress-rules", "ingress-rule", p.Ingress}, {"egress-rules", "egress-rule", p.Egress}} {
			for _, r := range dir.rules {
				if r.Peer.Selector == nil || groups[r.Peer.Selector.String()] {
					continue
				}
				at := wpPath.child("policies").entry("policy", []kv{{"name", p.Name}}).child(dir.list).
					entry(dir.entry, []kv{{"sequence-id", fmt.Sprint(r.Seq)}}).child("config").child("peer-selector")
				out = append(out, fmt.Sprintf("%s: peer selector %s is no group's: it matches endpoints of this host only", at, r.Peer.Selector))
			}
		}
	}
	return out
}

// filterMembership is a neighbor's switchd:membership-routes, else its
// peer group's (pg, nil if none): filter keeps group membership routes
// off the session; send, the default, lets a fabric of switchd nodes
// work with no setting (a peer outside it gets filter).
func filterMembership(n *oc.NetworkInstance_Protocol_Bgp_Neighbor, pg *oc.NetworkInstance_Protocol_Bgp_PeerGroup) bool {
	m := n.GetMembershipRoutes()
	if m == oc.Switchd_MembershipRoutes_UNSET {
		m = pg.GetMembershipRoutes()
	}
	return m == oc.Switchd_MembershipRoutes_filter
}

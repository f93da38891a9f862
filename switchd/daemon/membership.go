package daemon

import (
	"context"
	"maps"
	"net/netip"
	"slices"

	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
)

// groupMembers is the loop's bookkeeping of groups whose membership BGP
// carries (/switchd/workload-policy/groups): which local endpoint
// addresses are in which group (announced by Speaker.SetMembership), and
// which remote addresses the learned membership routes name (given to the
// policy engine as SetMembers sources, one per group, under the group's
// selector, so a peer selector equal to it matches local and remote
// members alike). Learned membership routes never reach the FIB: bgpFIB
// hands them to take.
type groupMembers struct {
	groups []config.Group
	local  map[string]policy.Endpoint // by endpoint ID
	remote map[netip.Prefix][]uint32  // learned: the groups of each address
	// given are the SetMembers sources last given, by source, with the
	// selector they were given under.
	given map[string]policy.Selector
	// announced is what SetMembership last accepted (nil: nothing).
	announced map[netip.Prefix][]uint32
	// localDirty asks for a SetMembership. delta is, per group id, the
	// remote addresses that joined (true) or left (false) since the
	// engine was last told, which AddMembers and RemoveMembers pass on:
	// one route's change costs its addresses, not a pass over every
	// learned route. full are the groups to give whole (SetMembers), as
	// after a failure; allDirty all of them (the groups changed).
	localDirty bool
	delta      map[uint32]map[netip.Addr]bool
	full       map[uint32]bool
	allDirty   bool
}

// membershipSource is the SetMembers source of a group's remote members.
func membershipSource(g config.Group) string { return "bgp-group:" + g.Name }

// setGroups takes the config's groups; a change recomputes both sides.
func (g *groupMembers) setGroups(gs []config.Group) {
	if slices.EqualFunc(g.groups, gs, func(a, b config.Group) bool {
		return a.Name == b.Name && a.ID == b.ID && a.Selector.Equal(b.Selector)
	}) {
		return
	}
	g.groups = slices.Clone(gs)
	g.localDirty, g.allDirty = true, true
}

// upsert and remove follow the local endpoints (Daemon.onEndpoints).
func (g *groupMembers) upsert(ep policy.Endpoint) {
	if g.local == nil {
		g.local = map[string]policy.Endpoint{}
	}
	g.local[ep.ID] = ep
	g.localDirty = true
}

func (g *groupMembers) remove(id string) {
	if _, ok := g.local[id]; ok {
		delete(g.local, id)
		g.localDirty = true
	}
}

// take is bgpFIB's filter: member reports whether r is (or was) a
// membership route, which the FIB must not install; fresh that it was not
// one before (it may have been an ordinary route, to be deleted). It
// records the route's groups.
func (g *groupMembers) take(r bgp.Route) (member, fresh bool) {
	old, had := g.remote[r.Prefix]
	ids, ok := r.Membership()
	if len(r.NextHops) == 0 || !ok {
		if !had {
			return false, false
		}
		delete(g.remote, r.Prefix)
		g.note(r.Prefix.Addr(), old, nil)
		// A withdrawal: nothing in the FIB. A route that lost its marker
		// is an ordinary route from now on.
		return len(r.NextHops) == 0, false
	}
	if g.remote == nil {
		g.remote = map[netip.Prefix][]uint32{}
	}
	if !had || !slices.Equal(old, ids) {
		g.remote[r.Prefix] = ids
		g.note(r.Prefix.Addr(), old, ids)
	}
	return true, !had
}

// note records that a left the groups in old and not in now, and joined
// those in now and not in old (both sorted).
func (g *groupMembers) note(a netip.Addr, old, now []uint32) {
	if g.delta == nil {
		g.delta = map[uint32]map[netip.Addr]bool{}
	}
	set := func(id uint32, in bool) {
		d := g.delta[id]
		if d == nil {
			d = map[netip.Addr]bool{}
			g.delta[id] = d
		}
		d[a] = in
	}
	for _, id := range old {
		if _, ok := slices.BinarySearch(now, id); !ok {
			set(id, false)
		}
	}
	for _, id := range now {
		if _, ok := slices.BinarySearch(old, id); !ok {
			set(id, true)
		}
	}
}

// count is the number of learned membership routes (not FIB routes).
func (g *groupMembers) count() int { return len(g.remote) }

// localMembership is, per address of a local endpoint, the ids of the
// groups whose selectors match its labels.
func (g *groupMembers) localMembership() map[netip.Prefix][]uint32 {
	m := map[netip.Prefix][]uint32{}
	for _, ep := range g.local {
		var ids []uint32
		for _, gr := range g.groups {
			if gr.Selector.Matches(ep.Labels) {
				ids = append(ids, gr.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		for _, a := range ep.Addrs {
			m[netip.PrefixFrom(a, a.BitLen())] = ids
		}
	}
	return m
}

// membershipSpeaker and membersEngine are what applyMembership uses of
// the speaker and of the policy engine.
type membershipSpeaker interface {
	SetMembership(ctx context.Context, m map[netip.Prefix][]uint32) error
}

type membersEngine interface {
	SetMembers(source string, selector policy.Selector, addrs []netip.Addr) error
	AddMembers(source string, selector policy.Selector, addrs ...netip.Addr) error
	RemoveMembers(source string, selector policy.Selector, addrs ...netip.Addr) error
}

// applyMembership announces the local membership if it changed and gives
// the policy engine the remote members of the groups whose membership
// changed. It runs each loop turn before the policy Apply; a failure
// stays dirty and is retried next turn.
func (d *Daemon) applyMembership(ctx context.Context) {
	g := &d.groups
	if g.localDirty {
		m := g.localMembership()
		if len(m) == 0 && len(g.announced) == 0 {
			g.localDirty = false
		} else if !maps.EqualFunc(m, g.announced, slices.Equal) {
			if err := d.speaker.SetMembership(ctx, m); err != nil {
				d.log.Error("group membership not announced", "err", err)
			} else {
				g.announced, g.localDirty = m, false
			}
		} else {
			g.localDirty = false
		}
	}
	if !g.allDirty && len(g.delta) == 0 && len(g.full) == 0 {
		return
	}
	want := map[string]config.Group{}
	for _, gr := range g.groups {
		want[membershipSource(gr)] = gr
	}
	// Sources of groups gone, or whose selector changed, are withdrawn.
	for src, sel := range g.given {
		if gr, ok := want[src]; !ok || !gr.Selector.Equal(sel) {
			if err := d.policy.SetMembers(src, sel, nil); err != nil {
				d.log.Error("group members not withdrawn", "source", src, "err", err)
			}
			delete(g.given, src)
			d.pol.dirty = true
		}
	}
	whole := g.wholeGroups(want)
	full := map[uint32]bool{}
	for src, gr := range want {
		if addrs, ok := whole[gr.ID]; ok {
			_, given := g.given[src]
			if len(addrs) == 0 && !given {
				continue
			}
			slices.SortFunc(addrs, netip.Addr.Compare)
			if err := d.policy.SetMembers(src, gr.Selector, addrs); err != nil {
				d.log.Error("group members not in policy", "group", gr.Name, "err", err)
				full[gr.ID] = true
				continue
			}
			if g.given == nil {
				g.given = map[string]policy.Selector{}
			}
			g.given[src] = gr.Selector
			d.pol.dirty = true
			continue
		}
		if err := d.applyMemberDelta(src, gr, g.delta[gr.ID]); err != nil {
			d.log.Error("group members not in policy", "group", gr.Name, "err", err)
			full[gr.ID] = true
		}
	}
	g.allDirty, g.full = false, full
	clear(g.delta)
}

// wholeGroups is, by id, the remote members of the groups (of want, by
// source) to give the engine whole: all after a change of groups, those
// whose last giving failed, and those it does not have that changed. A
// group it has is told its changes instead; one without members and
// without changes needs neither, so it costs no pass over the learned
// routes per turn.
func (g *groupMembers) wholeGroups(want map[string]config.Group) map[uint32][]netip.Addr {
	whole := map[uint32][]netip.Addr{}
	for src, gr := range want {
		_, given := g.given[src]
		if g.allDirty || g.full[gr.ID] || !given && len(g.delta[gr.ID]) > 0 {
			whole[gr.ID] = nil
		}
	}
	if len(whole) == 0 {
		return whole
	}
	for p, ids := range g.remote {
		for _, id := range ids {
			if as, ok := whole[id]; ok {
				whole[id] = append(as, p.Addr())
			}
		}
	}
	return whole
}

// applyMemberDelta gives the engine a group's joins and leaves, sorted.
func (d *Daemon) applyMemberDelta(src string, gr config.Group, delta map[netip.Addr]bool) error {
	if len(delta) == 0 {
		return nil
	}
	var add, remove []netip.Addr
	for a, in := range delta {
		if in {
			add = append(add, a)
		} else {
			remove = append(remove, a)
		}
	}
	d.pol.dirty = true
	if len(remove) > 0 {
		slices.SortFunc(remove, netip.Addr.Compare)
		if err := d.policy.RemoveMembers(src, gr.Selector, remove...); err != nil {
			return err
		}
	}
	if len(add) > 0 {
		slices.SortFunc(add, netip.Addr.Compare)
		return d.policy.AddMembers(src, gr.Selector, add...)
	}
	return nil
}

package fib

import "slices"

// Notifications about switchd's nexthop objects and groups (Monitor ->
// Table.OnRouteEvent -> nhManager).

// nhNotice is what a nexthop notification says about an object (key,
// without the family) or a group (its members).
type nhNotice struct {
	group   bool
	members []grpEntry
	key     nhKey
	offload Offload // nh_flags: what a driver offloading it reports
}

func (m *nhManager) hasGroups() bool { return true }

// nexthopChanged reports whether a nexthop notification tells something
// the manager's view does not know (someone else changed or removed one of
// switchd's objects, or added one with switchd's protocol), so the table
// must resync. A group whose members changed behind switchd's back counts:
// its routes forward differently from what the table believes, and
// InSync must not say true until a dump has shown it. A group's hardware
// state is taken in (and published) without a resync.
func (m *nhManager) nexthopChanged(deleted bool, id uint32, n *nhNotice) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, isObj := m.objs[id]
	g, isGroup := m.groups[id]
	if isGroup && !deleted && n != nil && n.offload != g.offload {
		g.offload = n.offload
		m.publishGroup(id)
	}
	switch {
	case deleted:
		return isObj || isGroup
	case !isObj && !isGroup:
		return !m.taken[id]
	case n == nil:
		return false
	case isObj:
		return n.group || n.key.gw != o.key.gw || n.key.ifindex != o.key.ifindex
	}
	if !n.group || len(n.members) != len(g.members) {
		return true
	}
	got := make([]NextHop, 0, len(n.members))
	for _, e := range n.members {
		mo := m.objs[e.id]
		if mo == nil {
			return true
		}
		got = append(got, NextHop{Gateway: mo.key.gw, Ifindex: mo.key.ifindex, Weight: e.weight})
	}
	r := Route{NextHops: got}
	r.normalizeNextHops()
	return !slices.EqualFunc(r.NextHops, g.members, func(a, b NextHop) bool {
		return a.Gateway == b.Gateway && a.Ifindex == b.Ifindex && a.Weight == b.Weight
	})
}

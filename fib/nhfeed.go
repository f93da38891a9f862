package fib

import (
	"maps"
	"slices"

	"golang.org/x/sys/unix"
)

// The nexthop-group feed: switchd's nexthop groups as they are in the
// kernel — created, rewritten (a path withdrawn, a next hop down),
// deleted, found different by a dump, or given hardware flags by a driver
// that offloads them (RTM_NEWNEXTHOP with RTNH_F_OFFLOAD, RTNH_F_TRAP) —
// for the AFT's next-hop groups. The route feed (feed.go) names each
// route's group. Groups are few (one per next-hop set), so the feed is
// always on; changes coalesce per id and Kernel.DrainGroups reads the
// view as it is then.

// GroupUpdate is the kernel state of one of switchd's nexthop groups.
type GroupUpdate struct {
	ID      uint32
	Deleted bool
	// NextHops are the members, with their interfaces and weights.
	NextHops []NextHop
	// Buckets is the bucket count of a resilient group; 0 for an
	// ordinary (hash-threshold) one.
	Buckets uint16
	Offload Offload
}

// groupFeed holds the groups changed since the last drain (guarded by
// the manager's mu); kick is the Kernel's.
type groupFeed struct {
	kick    chan struct{}
	changed map[uint32]struct{}
}

// publishGroup records that group id changed. Call with mu held.
func (m *nhManager) publishGroup(id uint32) {
	f := &m.feed
	if f.changed == nil {
		f.changed = make(map[uint32]struct{})
	}
	f.changed[id] = struct{}{}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// publishGroupChanges publishes the differences between the group view
// old and the current one (after a dump). Call with mu held.
func (m *nhManager) publishGroupChanges(old map[uint32]*nhGroup) {
	for id, g := range m.groups {
		o := old[id]
		if o == nil || o.res != g.res || o.offload != g.offload || !slices.Equal(o.members, g.members) {
			m.publishGroup(id)
		}
	}
	for id := range old {
		if m.groups[id] == nil {
			m.publishGroup(id)
		}
	}
}

// drainGroups returns the groups changed since the last drain.
func (m *nhManager) drainGroups() []GroupUpdate {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]GroupUpdate, 0, len(m.feed.changed))
	for _, id := range slices.Sorted(maps.Keys(m.feed.changed)) {
		g := m.groups[id]
		if g == nil {
			out = append(out, GroupUpdate{ID: id, Deleted: true})
			continue
		}
		out = append(out, GroupUpdate{ID: id, NextHops: slices.Clone(g.members), Buckets: g.res.buckets, Offload: g.offload})
	}
	clear(m.feed.changed)
	return out
}

// GroupsUpdated receives a value when DrainGroups has something to
// return (one value for any number of changes).
func (k *Kernel) GroupsUpdated() <-chan struct{} { return k.groupsKick }

// DrainGroups returns the nexthop groups of switchd's that changed in the
// kernel since the last drain, one per id as the view has it now, sorted
// by id (and by protocol, for Tables of more than one). Safe to call from
// any goroutine.
func (k *Kernel) DrainGroups() []GroupUpdate {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []GroupUpdate
	for _, p := range slices.Sorted(maps.Keys(k.managers)) {
		out = append(out, k.managers[p].drainGroups()...)
	}
	return out
}

// nhOffload decodes the hardware flags of a nexthop (nhmsg.nh_flags).
func nhOffload(flags uint32) Offload {
	// Nexthops have no "offload failed" flag.
	return offloadBits(flags, unix.RTNH_F_OFFLOAD, unix.RTNH_F_TRAP, 0)
}

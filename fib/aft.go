package fib

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// The AFT view: switchd's routes and nexthop groups as the kernel holds
// them, readable from any goroutine while the Table's owner keeps
// changing them — what a gNMI server walks for the AFT (OpenConfig's
// abstract forwarding table) without a copy of a million routes.
//
// Routes: the Table's map is the view. Its owner writes it under
// Table.viewMu (put, remove; one uncontended lock per change) and reads
// it without; a reader takes the read lock for a chunk of routes at a
// time and copies them out, so a slow client never holds the owner up
// for more than one chunk. A walk is not a snapshot: a route changed
// meanwhile may show either way (the change itself reaches ON_CHANGE
// subscribers through the route feed, feed.go). Groups and next hops
// are few; Kernel.AFT copies them under the manager's lock.

// AFTRoute is one of switchd's routes as the kernel holds it.
type AFTRoute struct {
	Prefix netip.Prefix
	Type   RouteType
	// Metric is the route's priority; of two routes of switchd's for one
	// prefix the AFT shows the one with the lower metric (the one the
	// kernel forwards with).
	Metric int
	// Group is the nexthop group the route uses (0: none, or next hops
	// inline: then NextHops holds them).
	Group    uint32
	NextHops []NextHop
	// Offload is the hardware state a switchdev driver reports.
	Offload Offload
}

// RouteView reads a Table's kernel view from any goroutine: its routes,
// and the nexthop groups and objects of its dataplane (AFT).
type RouteView struct {
	t *Table
	m *nhManager // nil: next hops inline
}

// View returns the Table's AFT view.
func (t *Table) View() RouteView {
	m, _ := t.dp.(*nhManager)
	return RouteView{t: t, m: m}
}

// AFT returns the nexthop groups and objects of the Table's dataplane,
// which its Kernel's other Tables share (Kernel.AFT).
func (v RouteView) AFT() ([]AFTGroup, []AFTNextHop) {
	if v.m == nil {
		return nil, nil
	}
	gs, nhs := v.m.aft()
	sortAFT(gs, nhs)
	return gs, nhs
}

// aftChunk is how many routes a walk copies under one read lock.
const aftChunk = 256

// Walk calls fn with the routes in the kernel, in chunks (no order). fn
// runs without the lock and must not keep the slice. It stops at fn's
// first error and returns it.
func (v RouteView) Walk(fn func([]AFTRoute) error) error {
	t := v.t
	buf := make([]AFTRoute, 0, aftChunk)
	var err error
	t.viewMu.RLock()
	for k, e := range t.routes {
		if !e.inKernel() || t.shadowedLocked(k) {
			continue
		}
		buf = append(buf, aftRoute(k, &e))
		if len(buf) == aftChunk {
			t.viewMu.RUnlock()
			err = fn(buf)
			buf = buf[:0]
			t.viewMu.RLock()
			if err != nil {
				break
			}
		}
	}
	t.viewMu.RUnlock()
	if err != nil || len(buf) == 0 {
		return err
	}
	return fn(buf)
}

// Lookup returns the route the kernel forwards p with, of switchd's
// routes in this Table (the lowest metric).
func (v RouteView) Lookup(p netip.Prefix) (AFTRoute, bool) {
	t := v.t
	t.viewMu.RLock()
	defer t.viewMu.RUnlock()
	k := keyOf(RouteKey{Table: t.table, Dst: p.Masked()})
	for _, m := range t.metrics {
		k.priority = m
		if e, ok := t.routes[k]; ok && e.inKernel() {
			return aftRoute(k, &e), true
		}
	}
	return AFTRoute{}, false
}

// shadowedLocked reports whether a route of switchd's for k's prefix
// with a lower metric is in the kernel. Call with viewMu held (or as the
// owner).
func (t *Table) shadowedLocked(k rkey) bool {
	for _, m := range t.metrics {
		if m >= k.priority {
			return false
		}
		o := k
		o.priority = m
		if e, ok := t.routes[o]; ok && e.inKernel() {
			return true
		}
	}
	return false
}

func aftRoute(k rkey, e *entry) AFTRoute {
	rk := k.routeKey()
	r := AFTRoute{Prefix: rk.Dst, Type: e.ktyp, Metric: rk.Priority, Group: e.knhg, Offload: e.koff}
	if e.knhg == 0 {
		r.NextHops = slices.Clone(e.knhs)
	}
	return r
}

// put stores e at k for the owner, under the view's lock.
func (t *Table) put(k rkey, e entry) {
	t.viewMu.Lock()
	t.hw.move(t.routes[k].koff, e.koff)
	t.routes[k] = e
	if !slices.Contains(t.metrics, k.priority) {
		t.metrics = append(t.metrics, k.priority)
		slices.Sort(t.metrics)
	}
	t.viewMu.Unlock()
}

// remove deletes k for the owner, under the view's lock.
func (t *Table) remove(k rkey) {
	t.viewMu.Lock()
	t.hw.move(t.routes[k].koff, 0)
	delete(t.routes, k)
	t.viewMu.Unlock()
}

// viewLock is the Table's part of the AFT view: the lock that orders the
// owner's writes of routes with other goroutines' reads, and the metrics
// its routes have used (a handful: static, BGP, workloads), so a prefix
// is looked up without knowing its metric.
type viewLock struct {
	viewMu  sync.RWMutex
	metrics []uint32 // sorted; only grows
	hw      OffloadCounts
}

// AFTGroup is one of switchd's nexthop groups in the kernel. Ids are
// the kernel's (32-bit) in the AFT's type, where a renderer may add ids
// of its own above them.
type AFTGroup struct {
	ID      uint64
	Members []AFTMember
	// Buckets is a resilient group's bucket count (0: hash-threshold).
	Buckets uint16
	// Offload is the hardware state a driver reports for the group
	// (nh_flags: offload, trap).
	Offload Offload
}

// AFTMember is a group's member: a nexthop object and its weight.
type AFTMember struct {
	NextHop uint64 // the nexthop object's id (AFTNextHop.ID)
	Weight  int
}

// AFTNextHop is one of switchd's nexthop objects: a gateway and the
// interface it is reached through (or an interface alone).
type AFTNextHop struct {
	ID      uint64
	Gateway netip.Addr
	Ifindex int
}

// AFT returns switchd's nexthop groups and nexthop objects in the kernel
// as fib's view has them, each sorted by id. Safe from any goroutine.
// Without the nexthop-object writer (ModeMultipath) there are none:
// routes carry their next hops inline (AFTRoute.NextHops).
func (k *Kernel) AFT() ([]AFTGroup, []AFTNextHop) {
	k.mu.Lock()
	ms := slices.Collect(maps.Values(k.managers))
	k.mu.Unlock()
	var gs []AFTGroup
	var nhs []AFTNextHop
	for _, m := range ms {
		g, n := m.aft()
		gs, nhs = append(gs, g...), append(nhs, n...)
	}
	sortAFT(gs, nhs)
	return gs, nhs
}

func sortAFT(gs []AFTGroup, nhs []AFTNextHop) {
	slices.SortFunc(gs, func(a, b AFTGroup) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(nhs, func(a, b AFTNextHop) int { return cmp.Compare(a.ID, b.ID) })
}

func (m *nhManager) aft() ([]AFTGroup, []AFTNextHop) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gs := make([]AFTGroup, 0, len(m.groups))
	for id, g := range m.groups {
		ag := AFTGroup{ID: uint64(id), Buckets: g.res.buckets, Offload: g.offload, Members: make([]AFTMember, 0, len(g.members))}
		for _, nh := range g.members {
			o := m.objectFor(nh)
			if o == nil {
				continue
			}
			ag.Members = append(ag.Members, AFTMember{NextHop: uint64(o.id), Weight: max(nh.Weight, 1)})
		}
		gs = append(gs, ag)
	}
	nhs := make([]AFTNextHop, 0, len(m.objs))
	for id, o := range m.objs {
		nhs = append(nhs, AFTNextHop{ID: uint64(id), Gateway: o.key.gw, Ifindex: o.key.ifindex})
	}
	return gs, nhs
}

// objectFor is the nexthop object of a group member. A member without a
// gateway (an interface route) has the family of its group's routes,
// which the group does not record: either will do, one interface has one
// object per family and both say the same.
func (m *nhManager) objectFor(nh NextHop) *nhObject {
	if nh.Gateway.IsValid() {
		return m.byKey[nhKey{fam: family(nh.Gateway), gw: nh.Gateway, ifindex: nh.Ifindex}]
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if o := m.byKey[nhKey{fam: fam, ifindex: nh.Ifindex}]; o != nil {
			return o
		}
	}
	return nil
}

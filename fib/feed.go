package fib

import (
	"slices"
)

// The route feed (WithUpdates): what switchd's routes look like in the
// kernel, published as it changes — the source of the AFT (OpenConfig's
// abstract forwarding table) a gNMI subscriber sees. A change is recorded
// where the kernel view changes: a write that succeeded (Apply), a dump
// that found something else (resync), a notification (OnRouteEvent: a
// route changed behind switchd's back, or a driver that offloads the FIB
// set its hardware flags), a group rewrite that moved routes
// (NextHopDown). Only the key is recorded; DrainUpdates reads the kernel
// view as it is then, so changes coalesce per key and a burst costs one
// entry per route, not one per event. An Apply that writes nothing, or a
// resync that finds what the view holds, publishes nothing. With nexthop
// groups a route's next hops carry their interfaces as written; with
// inline next hops (ModeMultipath) a gateway given without one shows it
// once a dump has reported it (one more update at the next resync).
//
// Like every Table method, Updated and DrainUpdates belong to the
// goroutine that owns the Table; Updated's channel may be selected on
// anywhere.

// RouteUpdate is the kernel state of one of switchd's routes.
type RouteUpdate struct {
	// Route is the kernel's route: its key always, its type and next hops
	// unless Deleted. For a route over a nexthop group, the next hops are
	// the group's members.
	Route   Route
	Deleted bool
	// Offload is the hardware state the kernel reports (a switchdev
	// driver sets it; none without one).
	Offload Offload
	// Group is the nexthop group the route uses; 0: next hops inline.
	Group uint32
}

// updateFeed holds the keys changed since the last drain.
type updateFeed struct {
	kick    chan struct{}
	changed map[rkey]struct{}
}

// WithUpdates makes the Table publish the kernel state of its routes as
// it changes (Updated, DrainUpdates). Off by default: a Table nobody
// drains would keep a key for every route it installs.
func WithUpdates() Opt {
	return func(t *Table) {
		t.feed = &updateFeed{kick: make(chan struct{}, 1), changed: make(map[rkey]struct{})}
	}
}

// Updated receives a value when DrainUpdates has something to return
// (one value for any number of changes). Without WithUpdates it never
// does.
func (t *Table) Updated() <-chan struct{} {
	if t.feed == nil {
		return nil
	}
	return t.feed.kick
}

// DrainUpdates returns the routes whose kernel state changed since the
// last drain, one per key as the kernel view has it now, sorted by key.
func (t *Table) DrainUpdates() []RouteUpdate {
	f := t.feed
	if f == nil || len(f.changed) == 0 {
		return nil
	}
	keys := make([]rkey, 0, len(f.changed))
	for k := range f.changed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareRKey)
	out := make([]RouteUpdate, 0, len(keys))
	for _, k := range keys {
		e := t.routes[k]
		if !e.inKernel() {
			out = append(out, RouteUpdate{Route: Route{Key: k.routeKey()}, Deleted: true})
			continue
		}
		r := e.have().route(k.routeKey())
		r.NextHops = slices.Clone(r.NextHops)
		r.nhg, r.offload, r.regroup = 0, 0, false
		out = append(out, RouteUpdate{Route: r, Offload: e.koff, Group: e.knhg})
	}
	if len(f.changed) > 1024 {
		f.changed = make(map[rkey]struct{}) // let a large map go
	} else {
		clear(f.changed)
	}
	return out
}

// published records that k's kernel view changed.
func (t *Table) published(k rkey) {
	f := t.feed
	if f == nil {
		return
	}
	f.changed[k] = struct{}{}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// publishIfChanged records k if its kernel view differs from before.
func (t *Table) publishIfChanged(k rkey, before, after *entry) {
	if t.feed == nil {
		return
	}
	if before.inKernel() != after.inKernel() || after.inKernel() && !sameKernel(before, after) {
		t.published(k)
	}
}

// sameKernel reports whether two kernel halves say the same: type, next
// hops (exactly), group and hardware state.
func sameKernel(a, b *entry) bool {
	return a.ktyp == b.ktyp && a.knhg == b.knhg && a.koff == b.koff && slices.Equal(a.knhs, b.knhs)
}

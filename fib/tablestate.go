package fib

import (
	"maps"
	"slices"
	"time"
)

// What a Table reports: sync state, failures, counters and its views
// of the routes. Like every Table method, these belong to the goroutine
// that owns the Table.

// Stats counts what a Table did to the kernel. Write requests are counted
// when sent, whether they succeed or not; a route that could not be turned
// into a request (its next hop does not resolve) counts as a failure only.
type Stats struct {
	Adds     uint64 // exclusive creates sent
	Replaces uint64 // replaces sent
	Deletes  uint64 // deletes sent
	Failures uint64 // routes whose write failed or could not be sent (they stay pending)
	Resyncs  uint64 // full dumps completed
	// Nexthops counts nexthop object and group writes (creates,
	// rewrites, deletes) sent during this table's Applies.
	Nexthops uint64
	// InPlace counts routes brought to their desired next hops by a
	// group rewrite, without a route write.
	InPlace uint64
}

// Writes is the number of netlink write requests sent: routes and nexthops.
func (s Stats) Writes() uint64 { return s.RouteWrites() + s.Nexthops }

// RouteWrites is the number of route write requests sent.
func (s Stats) RouteWrites() uint64 { return s.Adds + s.Replaces + s.Deletes }

// RouteError is a route whose last write failed. It stays pending and is
// retried with backoff.
type RouteError struct {
	Key       RouteKey
	Err       error
	Attempts  int
	Since     time.Time // first failure
	NextRetry time.Time
}

// Errors returns the routes whose last write failed, sorted by key.
func (t *Table) Errors() []RouteError {
	out := make([]RouteError, 0, len(t.failures))
	for _, k := range slices.SortedFunc(maps.Keys(t.failures), compareRKey) {
		f := t.failures[k]
		out = append(out, RouteError{Key: k.routeKey(), Err: f.err, Attempts: f.attempts, Since: f.since, NextRetry: f.next})
	}
	return out
}

// RouteErr returns the error of the last write of the route at k, nil if
// it did not fail.
func (t *Table) RouteErr(k RouteKey) error {
	if k.Table == 0 {
		k.Table = t.table
	}
	if f := t.failures[keyOf(k.normalized())]; f != nil {
		return f.err
	}
	return nil
}

// NextRetry is the earliest time a failed route will be retried; zero if
// none failed.
func (t *Table) NextRetry() time.Time {
	var n time.Time
	for _, f := range t.failures {
		if n.IsZero() || f.next.Before(n) {
			n = f.next
		}
	}
	return n
}

// More reports whether the last Apply stopped early (WithInterrupt) with
// writes left that can be sent right away.
func (t *Table) More() bool { return t.more }

// Offload returns the hardware state the kernel last reported for the
// route at k (from a dump or a notification), and whether switchd's route
// is in the kernel view at all.
func (t *Table) Offload(k RouteKey) (Offload, bool) {
	if k.Table == 0 {
		k.Table = t.table
	}
	e := t.routes[keyOf(k.normalized())]
	return e.koff, e.inKernel()
}

// NextResync is when Apply will resync on its own (WithResyncInterval);
// zero if it never does.
func (t *Table) NextResync() time.Time {
	if t.resyncInterval <= 0 {
		return time.Time{}
	}
	return t.lastResync.Add(t.resyncInterval)
}

// InSync reports whether the kernel view matches the desired set: nothing is
// pending.
func (t *Table) InSync() bool {
	return len(t.pending) == 0 && len(t.stale) == 0 && (t.rs == nil || !t.rs.dirty)
}

// Pending is the number of keys that still need a write, the stale ones
// the sweep hold keeps included.
func (t *Table) Pending() int { return len(t.pending) + len(t.stale) }

// LastResync is when the last full dump completed (zero before the first).
func (t *Table) LastResync() time.Time { return t.lastResync }

// Stats returns the counters.
func (t *Table) Stats() Stats { return t.stats }

// Routes returns the desired routes, sorted by key.
func (t *Table) Routes() []Route { return t.sortedRoutes(true) }

// KernelRoutes returns the kernel view: switchd's routes as last dumped or
// written, sorted by key.
func (t *Table) KernelRoutes() []Route { return t.sortedRoutes(false) }

// sortedRoutes returns the desired (or the kernel's) routes, sorted.
func (t *Table) sortedRoutes(desired bool) []Route {
	keys := make([]rkey, 0, len(t.routes))
	for k, e := range t.routes {
		if desired && e.wanted() || !desired && e.inKernel() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareRKey)
	out := make([]Route, 0, len(keys))
	for _, k := range keys {
		e := t.routes[k]
		st := e.have()
		if desired {
			st = e.want()
		}
		r := st.route(k.routeKey())
		r.NextHops = slices.Clone(r.NextHops)
		r.set = 0
		out = append(out, r)
	}
	return out
}

// Stale is the number of adopted routes the sweep hold keeps. They are
// not pending (no Apply looks at them while the hold is on), but Pending
// counts them and InSync is false while there are any.
func (t *Table) Stale() int { return len(t.stale) }

package fib

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNotOwner is returned (wrapped) for a route whose key is held in the
// kernel by a route switchd does not own. switchd leaves that route alone
// and retries once it is gone.
var ErrNotOwner = errors.New("key held by a route of another owner")

// Table converges one kernel routing table to a desired set of routes.
//
// It keeps three views: desired (SetRoute, DeleteRoute: map writes only),
// kernel (what the last dump found plus what was written successfully since)
// and pending (keys where the two may differ). Apply is the only method that
// touches the kernel: it dumps the table if a resync was queued, sends the
// pending deletes and then the pending adds/replaces, and moves only the keys
// that succeeded into the kernel view. Failures stay pending and are retried
// by the next Apply.
//
// Ownership: switchd's routes carry protocol 77 (Protocol). The kernel
// view only ever holds routes that carry it and live in this table (the
// dump filters on both; see owned), deletes are only sent for keys in the
// kernel view, and each delete request carries the protocol so the kernel
// itself refuses to remove a foreign route with the same key. Routes of
// other protocols, connected routes and other tables are never touched.
//
// Complicating factors:
//   - The kernel's replace overwrites whatever route holds the key,
//     whatever its protocol. So a key the kernel view does not show as ours
//     is created with an exclusive add; EEXIST then means either our route
//     is there unseen (a resync settles it: one is queued) or another owner
//     holds the key (after that resync: ErrNotOwner, left alone).
//   - A next hop without an interface is resolved by the kernel, and the
//     dump reports the interface it chose; comparison treats a desired
//     Ifindex 0 as matching any interface (sameRoute).
//   - The kernel reports IPv6 metric 0 as 1024 and drops the weight of a
//     single-path route; Normalize maps desired routes to that form.
//
// Threading: a Table is not safe for concurrent use. Its methods are called
// from one goroutine, the daemon's fib loop.
type Table struct {
	table    int
	protocol int
	log      *slog.Logger
	dp       dataplane
	now      func() time.Time

	desired map[RouteKey]Route
	kernel  map[RouteKey]Route
	// pending holds the keys where desired and kernel may differ. It is
	// exact after every Set/Delete and Apply: a key is in it iff the two
	// views differ there.
	pending map[RouteKey]struct{}
	// conflict holds keys whose exclusive add hit EEXIST; the first time a
	// key lands here a resync is queued, later hits are not (ErrNotOwner).
	conflict map[RouteKey]struct{}

	resyncQueued   bool
	resyncInterval time.Duration
	lastResync     time.Time
	stats          Stats
}

// Stats counts what a Table did to the kernel. Write requests are counted
// when sent, whether they succeed or not.
type Stats struct {
	Adds     uint64 // exclusive creates sent
	Replaces uint64 // replaces sent
	Deletes  uint64 // deletes sent
	Failures uint64 // writes that failed (and stayed pending)
	Resyncs  uint64 // full dumps completed
}

// Writes is the number of netlink write requests sent.
func (s Stats) Writes() uint64 { return s.Adds + s.Replaces + s.Deletes }

// Opt configures a Table.
type Opt func(*Table)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Opt {
	return func(t *Table) {
		if l != nil {
			t.log = l
		}
	}
}

// WithProtocol marks and claims routes with protocol p instead of Protocol.
func WithProtocol(p int) Opt {
	return func(t *Table) { t.protocol = p }
}

// WithResyncInterval makes Apply resync by itself when the last full dump
// is older than d, catching drift no notification reports (IPv4 routes
// vanish with their link silently). The caller still has to call Apply, e.g.
// on a timer set to NextResync.
func WithResyncInterval(d time.Duration) Opt {
	return func(t *Table) { t.resyncInterval = d }
}

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Opt {
	return func(t *Table) { t.now = now }
}

// withDataplane replaces the kernel writer (tests of the reconcile logic).
func withDataplane(dp dataplane) Opt {
	return func(t *Table) { t.dp = dp }
}

// NewTable returns a Table for kernel table table (MainTable for 0) reached
// through h, e.g. a handle from netlink.NewHandleAt for a namespace. A nil h
// means the calling thread's namespace. The first Apply dumps the table
// before it writes anything, so a restarted switchd adopts its routes.
func NewTable(h *netlink.Handle, table int, opts ...Opt) *Table {
	if table == 0 {
		table = MainTable
	}
	if h == nil {
		h = &netlink.Handle{}
	}
	t := &Table{
		table:        table,
		protocol:     Protocol,
		log:          slog.New(slog.DiscardHandler),
		dp:           netlinkDataplane{h: h},
		now:          time.Now,
		desired:      make(map[RouteKey]Route),
		kernel:       make(map[RouteKey]Route),
		pending:      make(map[RouteKey]struct{}),
		conflict:     make(map[RouteKey]struct{}),
		resyncQueued: true,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// SetRoute makes r desired, replacing any desired route with the same key.
// A route with table 0 goes into this Table's table. An invalid route, or
// one for another table, is rejected with an error and changes nothing.
func (t *Table) SetRoute(r Route) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("set route: %w", err)
	}
	r.NextHops = slices.Clone(r.NextHops) // the caller keeps its slice
	if r.Key.Table == 0 {
		r.Key.Table = t.table
	}
	r.Normalize()
	if r.Key.Table != t.table {
		return fmt.Errorf("set route %v: table %d is not this table (%d)", r, r.Key.Table, t.table)
	}
	t.desired[r.Key] = r
	t.updatePending(r.Key)
	return nil
}

// DeleteRoute makes the route at k undesired. Deleting a key that is not
// desired is a no-op.
func (t *Table) DeleteRoute(k RouteKey) {
	if k.Table == 0 {
		k.Table = t.table
	}
	k = k.normalized()
	delete(t.desired, k)
	delete(t.conflict, k)
	t.updatePending(k)
}

// QueueResync asks the next Apply to dump the table first, replacing the
// kernel view with what the kernel reports. Call it at start, on a timer,
// and when something else may have changed switchd's routes.
func (t *Table) QueueResync() { t.resyncQueued = true }

// OnRouteEvent takes a kernel notification about one of this table's
// routes (from a Monitor) into the kernel view. A route deleted or changed
// behind switchd's back becomes pending and the next Apply repairs it; the
// echo of switchd's own writes changes nothing. Events for other tables
// are ignored.
func (t *Table) OnRouteEvent(ev RouteEvent) {
	k := ev.Route.Key
	if k.Table != t.table {
		return
	}
	if ev.Deleted {
		delete(t.kernel, k)
	} else {
		r := ev.Route
		r.NextHops = slices.Clone(r.NextHops)
		t.kernel[k] = r
	}
	t.updatePending(k)
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
func (t *Table) InSync() bool { return len(t.pending) == 0 }

// Pending is the number of keys that still need a write.
func (t *Table) Pending() int { return len(t.pending) }

// LastResync is when the last full dump completed (zero before the first).
func (t *Table) LastResync() time.Time { return t.lastResync }

// Stats returns the counters.
func (t *Table) Stats() Stats { return t.stats }

// Routes returns the desired routes, sorted by key.
func (t *Table) Routes() []Route { return sortedRoutes(t.desired) }

// KernelRoutes returns the kernel view: switchd's routes as last dumped or
// written, sorted by key.
func (t *Table) KernelRoutes() []Route { return sortedRoutes(t.kernel) }

// Apply converges the kernel to the desired set: a dump first if a resync
// is queued, then the pending deletes and writes. It returns the joined
// errors of every route that could not be written; those stay pending.
func (t *Table) Apply(ctx context.Context) error {
	if t.resyncInterval > 0 && !t.now().Before(t.NextResync()) {
		t.resyncQueued = true
	}
	if t.resyncQueued {
		if err := t.resync(ctx); err != nil {
			return err // the resync stays queued
		}
	}
	if len(t.pending) == 0 {
		return nil
	}
	ops := t.plan()
	results := t.dp.write(ctx, ops, t.protocol)
	var errs []error
	unsent, unsentErr := 0, error(nil)
	for i, o := range ops {
		k := o.route.Key
		err := results[i]
		var ns notSent
		if errors.As(err, &ns) {
			unsent++
			unsentErr = ns.err
			continue
		}
		switch o.kind {
		case opAdd:
			t.stats.Adds++
		case opReplace:
			t.stats.Replaces++
		case opDelete:
			t.stats.Deletes++
		}
		if err == nil {
			if o.kind == opDelete {
				delete(t.kernel, k)
			} else {
				t.kernel[k] = o.route
			}
			delete(t.conflict, k)
			delete(t.pending, k)
			continue
		}
		t.stats.Failures++
		if o.kind == opAdd && errors.Is(err, unix.EEXIST) {
			if _, seen := t.conflict[k]; !seen {
				// Maybe ours, unseen since the last dump: look again.
				t.conflict[k] = struct{}{}
				t.resyncQueued = true
			} else {
				err = ErrNotOwner
			}
		}
		if o.kind == opDelete {
			errs = append(errs, fmt.Errorf("delete route %v: %w", k, err))
		} else {
			errs = append(errs, fmt.Errorf("%v route %v: %w", o.kind, o.route, err))
		}
	}
	if unsent > 0 {
		errs = append(errs, fmt.Errorf("apply table %d: %d writes not sent: %w", t.table, unsent, unsentErr))
	}
	if len(errs) > 0 {
		t.log.Warn("fib apply incomplete", "table", t.table, "failed", len(errs), "pending", len(t.pending))
	}
	return errors.Join(errs...)
}

// plan turns the pending keys into writes: deletes first (they can only
// free resources and keys), then creates and replaces, each in key order.
func (t *Table) plan() []op {
	keys := slices.SortedFunc(maps.Keys(t.pending), compareKey)
	ops := make([]op, 0, len(keys))
	for _, k := range keys {
		if _, want := t.desired[k]; !want {
			ops = append(ops, op{kind: opDelete, route: t.kernel[k]})
		}
	}
	for _, k := range keys {
		want, ok := t.desired[k]
		if !ok {
			continue
		}
		kind := opAdd
		if _, have := t.kernel[k]; have {
			kind = opReplace
		}
		ops = append(ops, op{kind: kind, route: want})
	}
	return ops
}

func (t *Table) resync(ctx context.Context) error {
	rs, err := t.dp.list(ctx, t.table, t.protocol)
	if err != nil {
		return fmt.Errorf("resync table %d: %w", t.table, err)
	}
	t.kernel = make(map[RouteKey]Route, len(rs))
	for _, r := range rs {
		t.kernel[r.Key] = r
	}
	t.pending = make(map[RouteKey]struct{})
	for k := range t.kernel {
		t.updatePending(k)
	}
	for k := range t.desired {
		t.updatePending(k)
	}
	t.resyncQueued = false
	t.lastResync = t.now()
	t.stats.Resyncs++
	t.log.Debug("fib resync", "table", t.table, "kernel", len(t.kernel), "desired", len(t.desired), "pending", len(t.pending))
	return nil
}

// updatePending recomputes whether k needs a write.
func (t *Table) updatePending(k RouteKey) {
	want, wok := t.desired[k]
	have, hok := t.kernel[k]
	if wok == hok && (!wok || sameRoute(want, have)) {
		delete(t.pending, k)
		return
	}
	t.pending[k] = struct{}{}
}

func sortedRoutes(m map[RouteKey]Route) []Route {
	out := make([]Route, 0, len(m))
	for _, k := range slices.SortedFunc(maps.Keys(m), compareKey) {
		r := m[k]
		r.NextHops = slices.Clone(r.NextHops)
		out = append(out, r)
	}
	return out
}

func compareKey(a, b RouteKey) int {
	return cmp.Or(
		cmp.Compare(a.Table, b.Table),
		a.Dst.Addr().Compare(b.Dst.Addr()),
		cmp.Compare(a.Dst.Bits(), b.Dst.Bits()),
		cmp.Compare(a.TOS, b.TOS),
		cmp.Compare(a.Priority, b.Priority),
	)
}

package fib

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

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

	// routes holds the desired and the kernel view of each key in one
	// slot (entry), keyed by packed keys (rkey): with a million routes it
	// is most of switchd's heap, and one slot per key halves it.
	routes map[rkey]entry
	// pending holds the keys where desired and kernel may differ. It is
	// exact after every Set/Delete and Apply: a key is in it iff the two
	// views differ there. The value is the group move the key takes part
	// in (zero if none), counted in moves.
	pending map[rkey]moveKey
	// moves counts the pending routes by (kernel nexthop group, desired
	// next-hop set). When the count of a group equals its users, Apply
	// rewrites the group first (moveGroups), before any per-route work.
	moves map[moveKey]int
	// sets interns the desired next-hop sets: routes with equal next hops
	// share one slice (no copy per route) and one id.
	sets      map[string]*nhSet
	setByID   map[uint32]*nhSet
	lastSetID uint32
	keyBuf    []byte
	nhBuf     []NextHop
	// conflict holds keys whose exclusive add hit EEXIST, or whose write
	// met a stale view (errStaleView); the first time a key lands here a
	// resync is queued, later hits are not (ErrNotOwner, or a backoff).
	conflict map[rkey]struct{}

	resyncQueued   bool
	resyncInterval time.Duration
	lastResync     time.Time
	stats          Stats

	// Kernel writer set-up (Kernel.NewTable).
	mode        string
	noNexthops  bool
	serial      bool
	resAsk      bool // WithResilientGroups
	resBuckets  uint16
	resIdle     time.Duration
	closers     []func()
	batchSize   int
	interrupt   func() bool
	more        bool
	backoffBase time.Duration
	backoffMax  time.Duration

	// sweepHold keeps adopted routes that are not desired (stale) in the
	// kernel until the inputs are complete (EndOfInputs).
	sweepHold bool
	stale     map[rkey]struct{}
	// failures holds the keys whose last write failed, for backoff and
	// for Errors.
	failures map[rkey]*routeFailure

	// down holds the gateways NextHopDown marked (see nexthopdown.go);
	// downQueued those whose groups the next Apply rewrites first.
	down       map[netip.Addr]bool
	rs         *resolution // WithNextHopResolution (resolve.go); nil: off
	downQueued []netip.Addr

	feed *updateFeed // WithUpdates (feed.go); nil: off
	// viewLock orders writes of routes with the AFT view's readers
	// (aft.go): the owner writes routes only through put and remove.
	viewLock

	planned int // keys the last plan looked at (tests)
}

// moveKey is a pending route's move from kernel group g to desired set s.
type moveKey struct{ g, s uint32 }

// nhSet is an interned set of desired next hops.
type nhSet struct {
	id   uint32
	fam  uint8 // of the routes using it
	nhs  []NextHop
	refs int
	// eff is what the kernel should get: nhs without the gateways
	// NextHopDown marked down, unless that leaves none (then nhs).
	eff []NextHop
	// rec: a gateway is resolved recursively (resolve.go); unres: none
	// of its next hops resolves, its routes stay out of the kernel.
	rec, unres bool
}

type routeFailure struct {
	err      error
	attempts int
	since    time.Time
	next     time.Time
}

// newTable makes a Table without a dataplane (Kernel.NewTable gives it
// one; tests give a fake with withDataplane).
func newTable(table int, opts ...Opt) *Table {
	if table == 0 {
		table = MainTable
	}
	t := &Table{
		table:        table,
		protocol:     Protocol,
		log:          slog.New(slog.DiscardHandler),
		now:          time.Now,
		routes:       make(map[rkey]entry),
		pending:      make(map[rkey]moveKey),
		moves:        make(map[moveKey]int),
		sets:         make(map[string]*nhSet),
		setByID:      make(map[uint32]*nhSet),
		conflict:     make(map[rkey]struct{}),
		resyncQueued: true,
		batchSize:    defaultBatchSize,
		backoffBase:  100 * time.Millisecond,
		backoffMax:   30 * time.Second,
		stale:        make(map[rkey]struct{}),
		failures:     make(map[rkey]*routeFailure),
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// checkResolution turns next-hop resolution off for a writer that cannot
// feed it.
func (t *Table) checkResolution() {
	if t.rs != nil && t.mode != ModeNexthopGroups && t.mode != ModeMultipath && t.mode != "test" {
		t.log.Warn("fib: next-hop resolution needs a writer that dumps whole tables; off", "mode", t.mode)
		t.rs = nil
	}
}

// Mode says how this Table writes next hops (ModeNexthopGroups, ...).
func (t *Table) Mode() string { return t.mode }

// Close releases the Table's sockets. Routes and nexthops stay in the
// kernel: a restarted switchd adopts them.
func (t *Table) Close() {
	for _, c := range t.closers {
		c()
	}
	t.closers = nil
}

// SetRoute makes r desired, replacing any desired route with the same key.
// A route with table 0 goes into this Table's table. An invalid route, or
// one for another table, is rejected with an error and changes nothing.
func (t *Table) SetRoute(r Route) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("set route: %w", err)
	}
	// Normalize in scratch space: the caller keeps its slice, and the
	// route keeps the interned copy.
	t.nhBuf = append(t.nhBuf[:0], r.NextHops...)
	r.NextHops = t.nhBuf
	if r.Key.Table == 0 {
		r.Key.Table = t.table
	}
	r.Normalize()
	if r.Key.Table != t.table {
		return fmt.Errorf("set route %v: table %d is not this table (%d)", r, r.Key.Table, t.table)
	}
	var s *nhSet
	if r.Type == Unicast {
		s = t.intern(family(r.Key.Dst.Addr()), t.nhBuf)
	}
	k := keyOf(r.Key)
	e := t.routes[k]
	had, old := e.wanted(), e.dset
	if had && e.dtyp == r.Type && old == s {
		t.unref(s) // the same wish again: nothing changes
		return nil
	}
	if len(t.failures) > 0 {
		delete(t.failures, k) // a new wish is tried at once
	}
	e.setWant(r.Type, s)
	if t.rs != nil {
		t.ownChanged(k, old, s)
	}
	t.put(k, e)
	if len(t.stale) > 0 {
		delete(t.stale, k)
	}
	t.updatePendingEntry(k, &e)
	if had {
		t.unref(old)
	}
	return nil
}

// intern returns the interned set equal to nhs (normalized) for routes of
// family fam, with a reference taken for the caller.
func (t *Table) intern(fam uint8, nhs []NextHop) *nhSet {
	t.keyBuf = appendSetKey(t.keyBuf[:0], fam, nhs)
	s := t.sets[string(t.keyBuf)]
	if s == nil {
		t.lastSetID++
		s = &nhSet{id: t.lastSetID, fam: fam, nhs: slices.Clone(nhs)}
		t.initEff(s)
		t.sets[string(t.keyBuf)] = s
		t.setByID[s.id] = s
	}
	s.refs++
	return s
}

// unref drops a desired route's reference to set s (nil: none).
func (t *Table) unref(s *nhSet) {
	if s == nil {
		return
	}
	if s.refs--; s.refs <= 0 {
		t.keyBuf = appendSetKey(t.keyBuf[:0], s.fam, s.nhs)
		delete(t.sets, string(t.keyBuf))
		delete(t.setByID, s.id)
		if len(t.down) > 0 {
			t.forgetDown(s.nhs)
		}
		if t.rs != nil {
			t.untrack(s)
		}
	}
}

// DeleteRoute makes the route at k undesired. Deleting a key that is not
// desired is a no-op.
func (t *Table) DeleteRoute(k RouteKey) {
	if k.Table == 0 {
		k.Table = t.table
	}
	rk := keyOf(k.normalized())
	delete(t.conflict, rk)
	delete(t.failures, rk)
	e, ok := t.routes[rk]
	if !ok || !e.wanted() {
		return
	}
	old := e.dset
	e.clearWant()
	if t.rs != nil {
		t.ownChanged(rk, old, nil)
	}
	t.store(rk, &e)
	t.updatePendingEntry(rk, &e)
	t.unref(old)
}

// store writes e back to the map, or takes the key out if e holds nothing.
func (t *Table) store(k rkey, e *entry) {
	if e.empty() {
		t.remove(k)
	} else {
		t.put(k, *e)
	}
}

// SetSweepHold turns the sweep hold on or off. While it is on, Apply leaves
// in the kernel the routes it adopted from a dump that are not (yet)
// desired — after a restart, until every input (BGP End-of-RIB for each
// peer and family, or a bounded timer) has handed over its routes; the
// routes that are desired are written as usual. Turning it off lets the
// next Apply delete what is still undesired.
func (t *Table) SetSweepHold(on bool) {
	t.sweepHold = on
	if !on {
		// The held keys were kept out of pending: now they need work.
		for k := range t.stale {
			t.updatePending(k)
		}
		clear(t.stale)
	}
}

// EndOfInputs says that all inputs are complete: SetSweepHold(false).
func (t *Table) EndOfInputs() { t.SetSweepHold(false) }

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
	if ev.foreign {
		t.onForeign(ev)
		return
	}
	if ev.nexthop != 0 {
		if t.dp.nexthopChanged(ev.Deleted, ev.nexthop, ev.nh) {
			t.QueueResync()
		}
		return
	}
	if ev.Route.Key.Table != t.table {
		return
	}
	k := keyOf(ev.Route.Key)
	e := t.routes[k]
	before := e
	if ev.Deleted {
		e.clearHave()
	} else {
		r := ev.Route
		r.NextHops = slices.Clone(r.NextHops)
		e.setHave(stateOf(r))
	}
	t.publishIfChanged(k, &before, &e)
	t.store(k, &e)
	t.updatePendingEntry(k, &e)
}

// Apply converges the kernel to the desired set: a dump first if a resync
// is queued, then the pending deletes and writes. It returns the joined
// errors of every route that could not be written; those stay pending.
func (t *Table) Apply(ctx context.Context) error {
	t.more = false
	if t.resyncInterval > 0 && !t.now().Before(t.NextResync()) {
		t.resyncQueued = true
	}
	if len(t.downQueued) > 0 {
		t.applyDown(ctx)
	}
	if t.resyncQueued {
		if err := t.resync(ctx); err != nil {
			return err // the resync stays queued
		}
	}
	if t.rs != nil && t.rs.dirty {
		t.reresolve(true)
	}
	if len(t.pending) == 0 {
		return nil
	}
	t.moveGroups(ctx)
	now := t.now()
	ops, deferred := t.plan(now)
	defer func() {
		// A map emptied by deletes keeps its size and tombstones, which
		// every later lookup pays for: start afresh.
		if len(t.pending) == 0 && len(ops) > 1024 {
			t.pending = make(map[rkey]moveKey)
		}
	}()
	var errs []error
	unsent, unsentErr := 0, error(nil)
	// One write call sees the whole plan, so that it can tell when all
	// users of a group move together; it cuts the route writes into
	// batches itself and asks t.interrupt between them (batchControl).
	results, nhWrites := t.dp.write(ctx, ops, t.protocol, batchControl{size: t.batchSize, interrupt: t.interrupt})
	t.stats.Nexthops += uint64(nhWrites)
	for i, o := range ops {
		var ns notSent
		if errors.As(results[i], &ns) {
			if errors.Is(ns.err, errInterrupted) {
				t.more = true
				continue
			}
			unsent++
			unsentErr = ns.err
			continue
		}
		if err := t.took(o, results[i], now); err != nil {
			errs = append(errs, err)
		}
	}
	if unsent > 0 {
		errs = append(errs, fmt.Errorf("apply table %d: %d writes not sent: %w", t.table, unsent, unsentErr))
	}
	if deferred > 0 {
		errs = append(errs, fmt.Errorf("apply table %d: %d failed routes wait for their retry (next at %v)",
			t.table, deferred, t.NextRetry().Format(time.TimeOnly)))
	}
	if len(errs) > 0 {
		t.log.Warn("fib apply incomplete", "table", t.table, "failed", len(errs), "pending", len(t.pending))
	}
	return errors.Join(errs...)
}

// took books the outcome of one write and returns its error, if any.
func (t *Table) took(o op, err error, now time.Time) error {
	k := keyOf(o.route.Key)
	var us unsendable
	switch {
	case errors.As(err, &us):
		// Nothing was sent: a failure, but no write.
	case o.inPlace:
		t.stats.InPlace++
	case o.kind == opAdd:
		t.stats.Adds++
	case o.kind == opReplace:
		t.stats.Replaces++
	case o.kind == opDelete:
		t.stats.Deletes++
	}
	if err == nil {
		e := t.routes[k]
		before := e
		if o.kind == opDelete {
			e.clearHave()
		} else {
			e.setHave(stateOf(o.route))
		}
		t.publishIfChanged(k, &before, &e)
		t.store(k, &e)
		if len(t.conflict) > 0 {
			delete(t.conflict, k)
		}
		if len(t.failures) > 0 {
			delete(t.failures, k)
		}
		t.notPending(k)
		return nil
	}
	t.stats.Failures++
	retryNow := false
	if errors.Is(err, errStaleView) {
		if _, seen := t.conflict[k]; !seen {
			t.conflict[k] = struct{}{}
			t.resyncQueued = true
			retryNow = true
		}
	}
	if o.kind == opAdd && errors.Is(err, unix.EEXIST) {
		if _, seen := t.conflict[k]; !seen {
			// Maybe ours, unseen since the last dump: look again.
			t.conflict[k] = struct{}{}
			t.resyncQueued = true
			retryNow = true
		} else {
			err = ErrNotOwner
		}
	}
	if o.kind == opDelete {
		err = fmt.Errorf("delete route %v: %w", o.route.Key, err)
	} else {
		err = fmt.Errorf("%v route %v: %w", o.kind, o.route, err)
	}
	f := t.failures[k]
	if f == nil {
		f = &routeFailure{since: now}
		t.failures[k] = f
	}
	f.err = err
	f.attempts++
	f.next = now
	if !retryNow {
		f.next = now.Add(min(t.backoffMax, t.backoffBase<<min(f.attempts-1, 20)))
	}
	return err
}

// plan turns the pending keys into writes: deletes first (they can only
// free resources and keys), then creates and replaces, each in key order.
// Keys waiting for a retry, and stale keys under the sweep hold, are left
// out; deferred counts the former.
func (t *Table) plan(now time.Time) (ops []op, deferred int) {
	keys := make([]rkey, 0, len(t.pending))
	for k := range t.pending {
		if f := t.failures[k]; f != nil && now.Before(f.next) {
			deferred++
			continue
		}
		keys = append(keys, k)
	}
	t.planned = len(keys)
	slices.SortFunc(keys, compareRKey)
	// Deletes fill ops from the front, writes from the back (in reverse),
	// in one slice: no second slice of a million ops to grow and copy.
	ops = make([]op, len(keys))
	nd, nw := 0, 0
	for _, k := range keys {
		e := t.routes[k]
		switch {
		case !e.wanted() || e.unresolved():
			if _, stale := t.stale[k]; stale && t.sweepHold {
				continue
			}
			ops[nd] = op{kind: opDelete, route: e.have().route(k.routeKey()), oldNHG: e.knhg}
			nd++
		case e.inKernel():
			nw++
			ops[len(ops)-nw] = op{kind: opReplace, route: e.wantEff().route(k.routeKey()), oldNHG: e.knhg}
		default:
			nw++
			ops[len(ops)-nw] = op{kind: opAdd, route: e.wantEff().route(k.routeKey())}
		}
	}
	w := ops[len(ops)-nw:]
	slices.Reverse(w)
	copy(ops[nd:], w)
	return ops[:nd+nw], deferred
}

func (t *Table) resync(ctx context.Context) error {
	sink, tookForeign := t.foreignSink()
	rs, err := t.dp.list(ctx, t.table, t.protocol, sink)
	if err != nil {
		return fmt.Errorf("resync table %d: %w", t.table, err)
	}
	// The kernel view is replaced by the dump's: the keys it shows are
	// marked seen, then the others lose their kernel half.
	for _, r := range rs {
		k := keyOf(r.Key)
		e := t.routes[k]
		before := e
		e.setHave(stateOf(r))
		e.flags |= eSeen
		t.publishIfChanged(k, &before, &e)
		t.put(k, e)
	}
	for k, e := range t.routes {
		switch {
		case e.flags&eSeen != 0:
			e.flags &^= eSeen
			t.put(k, e)
		case e.inKernel():
			t.published(k)
			e.clearHave()
			t.store(k, &e)
		case !e.wanted():
			t.remove(k)
		}
	}
	tookForeign() // before pending: it may change what routes want
	t.pending = make(map[rkey]moveKey)
	t.moves = make(map[moveKey]int)
	if t.sweepHold {
		// Held before pending is computed, so that they never enter it.
		for k := range t.stale {
			if e := t.routes[k]; !e.inKernel() {
				delete(t.stale, k) // gone meanwhile
			}
		}
		for k, e := range t.routes {
			if !e.wanted() {
				t.stale[k] = struct{}{}
			}
		}
	}
	for k, e := range t.routes {
		t.updatePendingEntry(k, &e)
	}
	t.resyncQueued = false
	t.lastResync = t.now()
	t.stats.Resyncs++
	t.log.Debug("fib resync", "table", t.table, "kernel", len(rs), "keys", len(t.routes), "pending", len(t.pending))
	return nil
}

// updatePending recomputes whether k needs a write.
func (t *Table) updatePending(k rkey) {
	e := t.routes[k]
	t.updatePendingEntry(k, &e)
}

// updatePendingEntry is updatePending with k's entry at hand.
func (t *Table) updatePendingEntry(k rkey, e *entry) {
	wok, hok := e.wanted(), e.inKernel()
	if !wok && t.sweepHold && len(t.stale) > 0 {
		// A stale key under the sweep hold stays out of pending (plan
		// would only skip it, after sorting it), until the hold ends
		// (SetSweepHold) or the route leaves the kernel.
		if _, held := t.stale[k]; held {
			if hok {
				t.notPending(k)
				return
			}
			delete(t.stale, k)
		}
	}
	if wok && e.unresolved() {
		wok = false // wanted out of the kernel until it resolves
	}
	if wok == hok && (!wok || sameState(e.wantEff(), e.have())) {
		t.notPending(k)
		return
	}
	var mv moveKey
	if wok && hok && e.knhg != 0 && e.dset != nil && e.ktyp == Unicast {
		mv = moveKey{g: e.knhg, s: e.dset.id}
	}
	if mv.g == 0 && (len(t.moves) == 0 || !hok) {
		// No move is counted for k (a counted move needs k's kernel
		// route, and there are none): one map write, no lookup.
		t.pending[k] = mv
		return
	}
	old, was := t.pending[k]
	if was && old == mv {
		return
	}
	if was && old.g != 0 {
		t.unmove(old)
	}
	t.pending[k] = mv
	if mv.g != 0 {
		t.moves[mv]++
	}
}

// notPending takes k out of pending.
func (t *Table) notPending(k rkey) {
	if len(t.moves) == 0 {
		delete(t.pending, k) // no move counted: no lookup needed
		return
	}
	if mv, ok := t.pending[k]; ok {
		delete(t.pending, k)
		if mv.g != 0 {
			t.unmove(mv)
		}
	}
}

func (t *Table) unmove(mv moveKey) {
	if n := t.moves[mv] - 1; n > 0 {
		t.moves[mv] = n
	} else {
		delete(t.moves, mv)
	}
}

// moveGroups rewrites the nexthop groups whose every user wants the same
// new next hops, before any per-route work: when a path is withdrawn from
// a million routes, the kernel stops using it after O(groups) work. The
// routes' own bookkeeping follows in plan and write, which find their
// groups already right and write nothing for them.
func (t *Table) moveGroups(ctx context.Context) {
	if !t.dp.hasGroups() || len(t.moves) == 0 {
		return
	}
	var mvs []groupMove
	for mv, n := range t.moves {
		s := t.setByID[mv.s]
		if s == nil {
			continue
		}
		mvs = append(mvs, groupMove{g: mv.g, fam: s.fam, nhs: s.eff, users: n})
	}
	_, writes := t.dp.moveGroups(ctx, mvs)
	t.stats.Nexthops += uint64(writes)
}

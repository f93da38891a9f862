package fib

import (
	"log/slog"
	"time"
)

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

// WithoutNexthopObjects writes next hops inline in each route
// (RTA_MULTIPATH) instead of through shared nexthop groups: the fallback a
// Table takes by itself on a kernel without nexthop objects.
func WithoutNexthopObjects() Opt {
	return func(t *Table) { t.noNexthops = true }
}

// WithResilientGroups makes the nexthop groups of two or more next hops
// resilient groups (kernel 5.13+) with the given number of buckets and idle
// timer: the kernel hashes flows to buckets, not straight to next hops, so
// when a next hop goes away (link down, path withdrawn, NextHopDown) only
// the flows of its buckets move and every other flow keeps its next hop; a
// next hop that comes back gets buckets only once they have been idle for
// idleTimer. The bucket count of a group is fixed: a group of another
// count is replaced by a new one, as is every group when the option is
// switched on or off. NewTable probes the kernel and falls back to
// ordinary groups (with a log line) if it refuses. Groups are shared by
// the Tables of a Kernel: the first Table's choice holds for all (give it
// to Open).
// buckets must be at least 1 and idleTimer not negative; it is ignored
// with WithoutNexthopObjects or WithSerialWriter.
func WithResilientGroups(buckets uint16, idleTimer time.Duration) Opt {
	return func(t *Table) { t.resAsk, t.resBuckets, t.resIdle = true, buckets, idleTimer }
}

// WithSerialWriter writes one route per request through vishvananda/netlink
// and waits for each answer: the first writer of this package, kept as a
// reference for tests and benchmarks.
func WithSerialWriter() Opt {
	return func(t *Table) { t.serial = true }
}

// WithBatchSize bounds the route writes handed to the kernel writer at once
// (default 65536); between batches Apply checks its interrupt (WithInterrupt).
func WithBatchSize(n int) Opt {
	return func(t *Table) {
		if n > 0 {
			t.batchSize = n
		}
	}
}

// WithInterrupt gives Apply a function it calls between batches; when it
// returns true (the caller has urgent work, e.g. a link event queued), Apply
// stops, returns and leaves the rest pending: More reports it, and the next
// Apply continues. A large change therefore never delays a link event by
// more than one batch.
func WithInterrupt(f func() bool) Opt {
	return func(t *Table) { t.interrupt = f }
}

// WithBackoff sets how long a route whose write failed waits before the
// next attempt: base, doubling per failure up to max (default 100ms..30s).
func WithBackoff(base, max time.Duration) Opt {
	return func(t *Table) { t.backoffBase, t.backoffMax = base, max }
}

// WithSweepHold starts the Table with its sweep hold on (SetSweepHold).
func WithSweepHold() Opt {
	return func(t *Table) { t.sweepHold = true }
}

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Opt {
	return func(t *Table) { t.now = now }
}

// withDataplane replaces the kernel writer (tests of the reconcile logic).
func withDataplane(dp dataplane) Opt {
	return func(t *Table) { t.dp = dp }
}

// WithNextHopResolution makes the Table resolve next hops that are not
// on a link through the other routes of its table, as FRR's zebra does
// (resolve.go): a route via an iBGP peer's loopback is installed via the
// next hops of the route to that loopback, follows them when they change,
// and leaves the kernel (listed by Unresolved) while nothing resolves it.
// Given to NewMonitor, it makes the Monitor report other owners' routes of
// its table too, which the Table needs to see connected and static routes
// come and go: feed that Monitor's events to OnRouteEvent. It needs a
// writer that dumps whole tables (not WithSerialWriter).
func WithNextHopResolution() Opt {
	return func(t *Table) { t.rs = newResolution() }
}

package fib

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dataplane is the seam between Table's bookkeeping and the kernel: Table
// decides what to write, a dataplane writes it; Table reaches the kernel
// through nothing else. The kernel ones are the nexthop-group writer
// (nhManager, nexthop.go) and the inline-multipath fallback
// (multipathDataplane, multipath.go), both pipelined; the netlink one
// below sends one request at a time through vishvananda/netlink and is
// kept as a reference (WithSerialWriter). Tests of the reconcile logic
// use a fake (plan_test.go).
type dataplane interface {
	// list returns every route of table marked with protocol, both
	// families, converted and normalized. A dataplane that dumps the
	// whole table hands the other owners' routes of it to sink (if not
	// nil) and sets sink.taken.
	list(ctx context.Context, table, protocol int, sink *foreignSink) ([]Route, error)
	// write performs ops in order and returns one result per op; ops it
	// did not send (ctx done, or ctl.interrupt said stop between two
	// batches of ctl.size route writes) get a notSent error. It may set an
	// op's inPlace (a nexthop group rewrite made the route right, no route
	// write was sent) and route.nhg (the group the route now uses). It
	// also returns the number of nexthop object and group writes it sent.
	write(ctx context.Context, ops []op, protocol int, ctl batchControl) ([]error, int)

	// hasGroups reports whether routes use shared nexthop groups; without
	// them the three methods below do nothing.
	hasGroups() bool
	// moveGroups rewrites in place each group whose every user moves to
	// the same next hops (users counts those of the calling table) and
	// returns the groups rewritten and the nexthop writes sent.
	moveGroups(ctx context.Context, moves []groupMove) (done []uint32, nhWrites int)
	// dropGateways rewrites every group holding one of gws and other
	// members besides without them (NextHopDown), and returns the new
	// members of each group rewritten and the nexthop writes sent.
	dropGateways(ctx context.Context, gws []netip.Addr) (map[uint32][]NextHop, int)
	// nexthopChanged reports whether a notification about nexthop id
	// tells something the dataplane's view does not know, so that the
	// table must resync.
	nexthopChanged(deleted bool, id uint32, n *nhNotice) bool
}

// batchControl is how a write cuts its route writes: batches of at most
// size, and between batches interrupt (if set) may stop the rest (they
// come back notSent{errInterrupted}).
type batchControl struct {
	size      int
	interrupt func() bool
}

const defaultBatchSize = 65536

// batcher applies a batchControl to writes sent one at a time.
type batcher struct {
	ctl  batchControl
	sent int
	stop error
}

// next reports why the next route write must not be sent (ctx done, or
// a batch is complete and the interrupt says stop); nil: send it. Once
// it said stop, it says so for every later write.
func (b *batcher) next(ctx context.Context) error {
	if b.stop == nil {
		b.stop = ctx.Err()
	}
	if b.stop == nil && b.sent > 0 && b.ctl.size > 0 && b.sent%b.ctl.size == 0 && b.ctl.interrupt != nil && b.ctl.interrupt() {
		b.stop = errInterrupted
	}
	if b.stop == nil {
		b.sent++
	}
	return b.stop
}

var errInterrupted = errors.New("apply interrupted for urgent work")

// noGroups is the group half of a dataplane without nexthop groups.
type noGroups struct{}

func (noGroups) hasGroups() bool { return false }
func (noGroups) moveGroups(context.Context, []groupMove) ([]uint32, int) {
	return nil, 0
}
func (noGroups) dropGateways(context.Context, []netip.Addr) (map[uint32][]NextHop, int) {
	return nil, 0
}
func (noGroups) nexthopChanged(bool, uint32, *nhNotice) bool { return false }

type opKind uint8

const (
	// opAdd creates a route where the kernel view has none. It fails with
	// EEXIST rather than overwrite a route of another owner at the same
	// key (the kernel's replace ignores the protocol).
	opAdd opKind = iota + 1
	// opReplace overwrites a route the kernel view shows as ours.
	opReplace
	// opDelete removes the route at a key, only if it is ours.
	opDelete
)

func (k opKind) String() string {
	switch k {
	case opAdd:
		return "add"
	case opReplace:
		return "replace"
	case opDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

type op struct {
	kind    opKind
	route   Route  // for opDelete the kernel's route
	oldNHG  uint32 // for opReplace: the nexthop group the kernel's route uses
	inPlace bool   // set by the dataplane: done by a group rewrite
}

// maxDumpAttempts bounds how often a dump cut short by a concurrent change
// (NLM_F_DUMP_INTR) is repeated before Apply gives up for this round.
const maxDumpAttempts = 10

type netlinkDataplane struct {
	noGroups
	h *netlink.Handle
}

func (d netlinkDataplane) list(ctx context.Context, table, protocol int, _ *foreignSink) ([]Route, error) {
	var out []Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		nrs, err := d.dump(ctx, family, table, protocol)
		if err != nil {
			return nil, err
		}
		for _, nr := range nrs {
			if !owned(nr, table, protocol) {
				continue // the filter is applied in user space; keep the guard local
			}
			r, err := fromNetlink(nr)
			if err != nil {
				return nil, fmt.Errorf("dump routes of table %d: %w", table, err)
			}
			out = append(out, r)
		}
	}
	return mergeSiblings(out), nil
}

func (d netlinkDataplane) dump(ctx context.Context, family, table, protocol int) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: table, Protocol: netlink.RouteProtocol(protocol)}
	var err error
	for range maxDumpAttempts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var nrs []netlink.Route
		nrs, err = d.h.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err == nil {
			return nrs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return nil, fmt.Errorf("dump %s routes of table %d: %w", familyName(family), table, err)
}

func (d netlinkDataplane) write(ctx context.Context, ops []op, protocol int, ctl batchControl) ([]error, int) {
	errs := make([]error, len(ops))
	b := batcher{ctl: ctl}
	for i, o := range ops {
		if err := b.next(ctx); err != nil {
			errs[i] = notSent{err}
			continue
		}
		var err error
		switch o.kind {
		case opAdd:
			err = d.h.RouteAdd(toNetlink(o.route, protocol))
		case opReplace:
			err = d.h.RouteReplace(toNetlink(o.route, protocol))
		case opDelete:
			err = d.h.RouteDel(deleteRequest(o.route.Key, protocol))
			if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
				err = nil // already gone: the delete is done
			}
		}
		errs[i] = err
	}
	return errs, 0
}

// notSent marks an op that was not sent (Apply was cancelled); it stays
// pending but is neither a write nor a failure.
type notSent struct{ err error }

func (e notSent) Error() string { return "not sent: " + e.err.Error() }
func (e notSent) Unwrap() error { return e.err }

// unsendable marks an op that failed before a route request could be made
// (its next hop does not resolve, its nexthop group could not be made): a
// failure, retried with backoff, but no route write.
type unsendable struct{ err error }

func (e unsendable) Error() string { return e.err.Error() }
func (e unsendable) Unwrap() error { return e.err }

// owned is the one ownership predicate: switchd touches a kernel route only
// if it carries switchd's protocol and lives in the table this Table owns.
func owned(nr netlink.Route, table, protocol int) bool {
	return int(nr.Protocol) == protocol && nr.Table == table
}

func familyName(f int) string {
	if f == netlink.FAMILY_V6 {
		return "IPv6"
	}
	return "IPv4"
}

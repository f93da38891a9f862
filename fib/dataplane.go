package fib

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dataplane is the seam between Table's bookkeeping and the kernel: Table
// decides what to write, a dataplane writes it. The kernel ones are the
// nexthop-group writer (nhManager, nexthop.go) and the inline-multipath
// fallback (multipathDataplane, kernel.go), both pipelined; the netlink one
// below sends one request at a time through vishvananda/netlink and is kept
// as a reference (WithSerialWriter). Tests of the reconcile logic use a fake.
type dataplane interface {
	// list returns every route of table marked with protocol, both
	// families, converted and normalized.
	list(ctx context.Context, table, protocol int) ([]Route, error)
	// write performs ops in order and returns one result per op; ops it
	// did not send (ctx done) get a notSent error. It may set an op's
	// inPlace (a nexthop group rewrite made the route right, no route write
	// was sent) and route.nhg (the group the route now uses). It also
	// returns the number of nexthop object and group writes it sent.
	write(ctx context.Context, ops []op, protocol int) ([]error, int)
}

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
	h *netlink.Handle
}

func (d netlinkDataplane) list(ctx context.Context, table, protocol int) ([]Route, error) {
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

func (d netlinkDataplane) write(ctx context.Context, ops []op, protocol int) ([]error, int) {
	errs := make([]error, len(ops))
	for i, o := range ops {
		if err := ctx.Err(); err != nil {
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

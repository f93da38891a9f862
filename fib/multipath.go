package fib

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// writeRoutes sends the route writes of ops that have no error yet and are
// not covered by a group rewrite (inPlace), pipelined in batches of at most
// maxBatchBytes and ctl.size routes, and stores each answer in errs.
// groupOf, if not nil, names the nexthop group each add/replace uses.
func writeRoutes(ctx context.Context, c *pnl.Conn, ops []op, errs []error, groupOf []uint32, protocol int, ctl batchControl) {
	var b pnl.Batch
	if ctl.size <= 0 {
		ctl.size = defaultBatchSize
	}
	idx := make([]int, 0, 1024) // op index of each message in b
	sent := 0
	flush := func() {
		if len(idx) == 0 {
			return
		}
		err := c.Exec(&b, func(i int, _ netlink.Message, err error) {
			o := ops[idx[i]]
			if err == nil || o.kind == opDelete && (errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)) {
				return // already gone: the delete is done
			}
			errs[idx[i]] = err
		})
		if err != nil {
			for _, i := range idx {
				errs[i] = err
			}
		}
		sent += len(idx)
		b.Reset()
		idx = idx[:0]
	}
	for i, o := range ops {
		if errs[i] != nil || o.inPlace {
			continue
		}
		err := ctx.Err()
		if err == nil && sent >= ctl.size {
			// A batch is done: urgent work first?
			if ctl.interrupt != nil && ctl.interrupt() {
				err = errInterrupted
			}
			sent = 0
		}
		if err != nil {
			flush()
			for j := i; j < len(ops); j++ {
				if errs[j] == nil && !ops[j].inPlace {
					errs[j] = notSent{err}
				}
			}
			return
		}
		if o.kind == opDelete {
			appendDelete(&b, o.route.Key, protocol)
		} else {
			var nhid uint32
			if groupOf != nil {
				nhid = groupOf[i]
			}
			appendRoute(&b, o.kind, o.route, nhid, protocol)
		}
		idx = append(idx, i)
		if b.Size() >= maxBatchBytes-4096 || sent+len(idx) >= ctl.size {
			flush()
		}
	}
	flush()
}

// multipathDataplane writes routes with their next hops inline
// (RTA_GATEWAY, RTA_MULTIPATH): the fallback for kernels without nexthop
// objects, pipelined like the nexthop one.
type multipathDataplane struct {
	noGroups
	c *pnl.Conn
}

func (d multipathDataplane) list(ctx context.Context, table, protocol int, sink *foreignSink) ([]Route, error) {
	var out []Route
	var dec routeDecoder
	reset := func() {
		out = out[:0]
		if sink != nil {
			sink.taken, sink.routes = true, sink.routes[:0]
		}
	}
	err := dumpRoutes(ctx, d.c, table, reset, func(data []byte) {
		kr, ok := dec.decode(data)
		if ok && kr.protocol == protocol && kr.route.Key.Table == table {
			out = append(out, kr.route)
		} else if ok && sink != nil && kr.route.Key.Table == table {
			sink.routes = append(sink.routes, kr.route)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dump routes of table %d: %w", table, err)
	}
	return mergeSiblings(out), nil
}

// dumpRoutes dumps the routes of table (0: of every table), both
// families, and hands each RTM_NEWROUTE to f; reset is called before
// every attempt (a dump the kernel marks interrupted is repeated).
func dumpRoutes(ctx context.Context, c *pnl.Conn, table int, reset func(), f func(data []byte)) error {
	var req pnl.Batch
	req.Begin(unix.RTM_GETROUTE, 0)
	req.Raw(unix.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0)
	req.U32(0)
	if table != 0 {
		// Strict checking makes the kernel filter on the table.
		req.AttrU32(unix.RTA_TABLE, uint32(table))
	}
	req.End()
	return c.Dump(ctx, &req, reset, func(m netlink.Message) error {
		if m.Header.Type == unix.RTM_NEWROUTE {
			f(m.Data)
		}
		return nil
	})
}

func (d multipathDataplane) write(ctx context.Context, ops []op, protocol int, ctl batchControl) ([]error, int) {
	errs := make([]error, len(ops))
	writeRoutes(ctx, d.c, ops, errs, nil, protocol, ctl)
	return errs, 0
}

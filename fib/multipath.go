package fib

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// writeRoutes sends the route writes of ops that have no error yet and are
// not covered by a group rewrite (inPlace), pipelined in batches of at most
// maxBatchBytes and ctl.size routes, and stores each answer in errs.
// groupOf, if not nil, names the nexthop group each add/replace uses.
func writeRoutes(ctx context.Context, c *rtnl, ops []op, errs []error, groupOf []uint32, protocol int, ctl batchControl) {
	var b msgBuf
	if ctl.size <= 0 {
		ctl.size = defaultBatchSize
	}
	idx := make([]int, 0, 1024) // op index of each message in b
	sent := 0
	flush := func() {
		if len(idx) == 0 {
			return
		}
		first := c.nextSeq(len(idx))
		renumber(&b, first)
		err := c.exec(&b, first, func(i int, err error) {
			o := ops[idx[i]]
			if o.kind == opDelete && (errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)) {
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
		b.reset()
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
			appendDelete(&b, 0, o.route.Key, protocol)
		} else {
			var nhid uint32
			if groupOf != nil {
				nhid = groupOf[i]
			}
			appendRoute(&b, 0, o.kind, o.route, nhid, protocol)
		}
		idx = append(idx, i)
		if len(b.b) >= maxBatchBytes-4096 || sent+len(idx) >= ctl.size {
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
	c *rtnl
}

func (d multipathDataplane) list(ctx context.Context, table, protocol int, sink *foreignSink) ([]Route, error) {
	var out []Route
	var err error
	for range maxDumpAttempts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out = out[:0]
		if sink != nil {
			sink.taken, sink.routes = true, sink.routes[:0]
		}
		var dec routeDecoder
		err = d.c.dump(func(b *msgBuf, seq uint32) {
			b.begin(unix.RTM_GETROUTE, unix.NLM_F_DUMP, seq)
			// Strict checking makes the kernel filter on the table.
			b.raw(unix.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0)
			b.u32(0)
			b.attrU32(unix.RTA_TABLE, uint32(table))
			b.end()
		}, func(typ uint16, _ uint16, data []byte) error {
			if typ != unix.RTM_NEWROUTE {
				return nil
			}
			kr, ok := dec.decode(data)
			if ok && kr.protocol == protocol && kr.route.Key.Table == table {
				out = append(out, kr.route)
			} else if ok && sink != nil && kr.route.Key.Table == table {
				sink.routes = append(sink.routes, kr.route)
			}
			return nil
		})
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dump routes of table %d: %w", table, err)
	}
	return mergeSiblings(out), nil
}

func (d multipathDataplane) write(ctx context.Context, ops []op, protocol int, ctl batchControl) ([]error, int) {
	errs := make([]error, len(ops))
	writeRoutes(ctx, d.c, ops, errs, nil, protocol, ctl)
	return errs, 0
}

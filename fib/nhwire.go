package fib

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// The netlink encoding of nexthop objects and groups, and the probe for
// resilient groups.

func appendNexthop(b *pnl.Batch, id uint32, k nhKey, protocol int) {
	b.Begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	b.Raw(k.fam, 0, uint8(protocol), 0)
	b.U32(0)
	b.AttrU32(unix.NHA_ID, id)
	b.AttrU32(unix.NHA_OIF, uint32(k.ifindex))
	if k.gw.IsValid() {
		b.Attr(unix.NHA_GATEWAY, k.gw.AsSlice())
	}
	b.End()
}

// appendNexthopDump asks for every nexthop (Conn.Dump adds NLM_F_DUMP).
func appendNexthopDump(b *pnl.Batch) {
	b.Begin(unix.RTM_GETNEXTHOP, 0)
	b.Raw(unix.AF_UNSPEC, 0, 0, 0)
	b.U32(0)
	b.End()
}

// appendDelNexthop deletes the nexthop object or group id.
func appendDelNexthop(b *pnl.Batch, id uint32) {
	b.Begin(unix.RTM_DELNEXTHOP, 0)
	b.Raw(unix.AF_UNSPEC, 0, 0, 0)
	b.U32(0)
	b.AttrU32(unix.NHA_ID, id)
	b.End()
}

func appendGroup(b *pnl.Batch, id uint32, entries []grpEntry, replace bool, protocol int, res resCfg) {
	flags := netlink.HeaderFlags(unix.NLM_F_CREATE | unix.NLM_F_EXCL)
	if replace {
		flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	b.Begin(unix.RTM_NEWNEXTHOP, flags)
	b.Raw(unix.AF_UNSPEC, 0, uint8(protocol), 0)
	b.U32(0)
	b.AttrU32(unix.NHA_ID, id)
	g := make([]byte, 0, 8*len(entries))
	for _, e := range entries {
		g = binary.NativeEndian.AppendUint32(g, e.id)
		w := e.weight - 1
		g = append(g, byte(w), byte(w>>8), 0, 0)
	}
	b.Attr(unix.NHA_GROUP, g)
	appendResAttrs(b, res)
	b.End()
}

// appendResAttrs makes the group resilient (no attributes for an ordinary
// one). A replace must name the type too: the kernel refuses to change it.
func appendResAttrs(b *pnl.Batch, res resCfg) {
	if !res.on() {
		return
	}
	b.AttrU16(unix.NHA_GROUP_TYPE, nexthopGrpTypeRes)
	n := b.Nest(nhaResGroup | unix.NLA_F_NESTED)
	b.AttrU16(nhaResGroupBuckets, res.buckets)
	b.AttrU32(nhaResGroupIdleTimer, res.idle)
	b.EndNest(n)
}

// probeResilient creates a small resilient group and deletes it again: a
// kernel before 5.13, or one refusing the parameters, answers with an
// error. The member is an FDB nexthop, which needs no device (a fresh
// namespace may have none up); the group is an FDB group to match.
func (m *nhManager) probeResilient(res resCfg) error {
	objID, err := m.allocID()
	if err != nil {
		return err
	}
	m.taken[objID] = true
	grpID, err := m.allocID()
	delete(m.taken, objID)
	if err != nil {
		return err
	}
	var b pnl.Batch
	b.Begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	b.Raw(unix.AF_INET, 0, uint8(m.protocol), 0)
	b.U32(0)
	b.AttrU32(unix.NHA_ID, objID)
	b.Attr(unix.NHA_GATEWAY, []byte{192, 0, 2, 1})
	b.Attr(nhaFDB, nil)
	b.End()
	b.Begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	b.Raw(unix.AF_UNSPEC, 0, uint8(m.protocol), 0)
	b.U32(0)
	b.AttrU32(unix.NHA_ID, grpID)
	b.Attr(unix.NHA_GROUP, append(binary.NativeEndian.AppendUint32(nil, objID), 0, 0, 0, 0)) // struct nexthop_grp
	appendResAttrs(&b, res)
	b.Attr(nhaFDB, nil)
	b.End()
	var probeErr error
	if err := m.c.Exec(&b, func(i int, _ netlink.Message, err error) {
		if err != nil && probeErr == nil {
			probeErr = fmt.Errorf("create probe nexthop %d: %w", []uint32{objID, grpID}[i], err)
		}
	}); err != nil {
		return err
	}
	var d pnl.Batch
	for _, id := range []uint32{grpID, objID} {
		appendDelNexthop(&d, id)
	}
	err = m.c.Exec(&d, func(i int, _ netlink.Message, err error) {
		if err != nil && probeErr == nil && !errors.Is(err, unix.ENOENT) {
			m.log.Warn("fib: delete resilient-group probe", "err", err)
		}
	})
	if probeErr == nil && err != nil {
		m.log.Warn("fib: delete resilient-group probe", "err", err)
	}
	return probeErr
}

// nhError reports a failed nexthop write. An id collision (EEXIST) is not
// wrapped: it must not read as a route held by another owner.
// errStaleView marks a write that failed because the kernel no longer
// has an object the Table's view holds: Apply dumps the table again and
// retries at once (once per route; then the usual backoff).
var errStaleView = errors.New("kernel state changed without notification; resyncing")

func nhError(op, what string, err error) error {
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s %s: id taken by another owner, retrying with another (%v)", op, what, err)
	}
	return fmt.Errorf("%s %s: %w", op, what, err)
}

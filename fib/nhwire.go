package fib

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The netlink encoding of nexthop objects and groups, and the probe for
// resilient groups.

func appendNexthop(b *msgBuf, seq, id uint32, k nhKey, protocol int) {
	b.begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq)
	b.raw(k.fam, 0, uint8(protocol), 0)
	b.u32(0)
	b.attrU32(unix.NHA_ID, id)
	b.attrU32(unix.NHA_OIF, uint32(k.ifindex))
	if k.gw.IsValid() {
		b.attr(unix.NHA_GATEWAY, k.gw.AsSlice())
	}
	b.end()
}

func appendGroup(b *msgBuf, seq, id uint32, entries []grpEntry, replace bool, protocol int, res resCfg) {
	flags := uint16(unix.NLM_F_CREATE | unix.NLM_F_EXCL)
	if replace {
		flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	b.begin(unix.RTM_NEWNEXTHOP, flags, seq)
	b.raw(unix.AF_UNSPEC, 0, uint8(protocol), 0)
	b.u32(0)
	b.attrU32(unix.NHA_ID, id)
	g := make([]byte, 0, 8*len(entries))
	for _, e := range entries {
		g = binary.NativeEndian.AppendUint32(g, e.id)
		w := e.weight - 1
		g = append(g, byte(w), byte(w>>8), 0, 0)
	}
	b.attr(unix.NHA_GROUP, g)
	appendResAttrs(b, res)
	b.end()
}

// appendResAttrs makes the group resilient (no attributes for an ordinary
// one). A replace must name the type too: the kernel refuses to change it.
func appendResAttrs(b *msgBuf, res resCfg) {
	if !res.on() {
		return
	}
	b.attrU16(unix.NHA_GROUP_TYPE, nexthopGrpTypeRes)
	n := b.nest(nhaResGroup | unix.NLA_F_NESTED)
	b.attrU16(nhaResGroupBuckets, res.buckets)
	b.attrU32(nhaResGroupIdleTimer, res.idle)
	b.endNest(n)
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
	var b msgBuf
	first := m.c.nextSeq(2)
	b.begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL, first)
	b.raw(unix.AF_INET, 0, uint8(m.protocol), 0)
	b.u32(0)
	b.attrU32(unix.NHA_ID, objID)
	b.attr(unix.NHA_GATEWAY, []byte{192, 0, 2, 1})
	b.attr(nhaFDB, nil)
	b.end()
	b.begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL, first+1)
	b.raw(unix.AF_UNSPEC, 0, uint8(m.protocol), 0)
	b.u32(0)
	b.attrU32(unix.NHA_ID, grpID)
	b.attr(unix.NHA_GROUP, append(binary.NativeEndian.AppendUint32(nil, objID), 0, 0, 0, 0)) // struct nexthop_grp
	appendResAttrs(&b, res)
	b.attr(nhaFDB, nil)
	b.end()
	var probeErr error
	if err := m.c.exec(&b, first, func(i int, err error) {
		if probeErr == nil {
			probeErr = fmt.Errorf("create probe nexthop %d: %w", []uint32{objID, grpID}[i], err)
		}
	}); err != nil {
		return err
	}
	var d msgBuf
	first = m.c.nextSeq(2)
	for i, id := range []uint32{grpID, objID} {
		d.begin(unix.RTM_DELNEXTHOP, 0, first+uint32(i))
		d.raw(unix.AF_UNSPEC, 0, 0, 0)
		d.u32(0)
		d.attrU32(unix.NHA_ID, id)
		d.end()
	}
	err = m.c.exec(&d, first, func(i int, err error) {
		if probeErr == nil && !errors.Is(err, unix.ENOENT) {
			m.log.Warn("fib: delete resilient-group probe", "err", err)
		}
	})
	if probeErr == nil && err != nil {
		m.log.Warn("fib: delete resilient-group probe", "err", err)
	}
	return probeErr
}

// renumber gives the messages in b consecutive sequence numbers from first.
func renumber(b *msgBuf, first uint32) {
	for off, i := 0, uint32(0); off+unix.NLMSG_HDRLEN <= len(b.b); i++ {
		binary.NativeEndian.PutUint32(b.b[off+8:], first+i)
		off += nlAlign(int(binary.NativeEndian.Uint32(b.b[off:])))
	}
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

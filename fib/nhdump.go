package fib

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// Reading the kernel's nexthop objects and groups back: dumps, adoption
// after a restart, usage counts of every table.

// dumpNexthops replaces the view of nexthop objects and groups with the
// kernel's. Call with mu held (or before the manager is shared).
func (m *nhManager) dumpNexthops() error {
	var objs map[uint32]*nhObject
	var groups map[uint32][]grpEntry
	var kinds map[uint32]resCfg
	var offload map[uint32]Offload
	var taken map[uint32]bool
	reset := func() {
		objs = make(map[uint32]*nhObject)
		groups = make(map[uint32][]grpEntry)
		kinds = make(map[uint32]resCfg)
		offload = make(map[uint32]Offload)
		taken = make(map[uint32]bool)
	}
	var req pnl.Batch
	appendNexthopDump(&req)
	err := m.c.Dump(context.Background(), &req, reset, func(msg netlink.Message) error {
		typ, data := uint16(msg.Header.Type), msg.Data
		if typ != unix.RTM_NEWNEXTHOP || len(data) < nhmsgLen {
			return nil
		}
		fam, proto := data[0], int(data[2])
		var id uint32
		var o nhObject
		var grp []grpEntry
		var gtype uint16
		var res resCfg
		isGroup := false
		forAttrs(data[nhmsgLen:], func(t uint16, v []byte) {
			switch t {
			case unix.NHA_ID:
				if len(v) >= 4 {
					id = binary.NativeEndian.Uint32(v)
				}
			case unix.NHA_OIF:
				if len(v) >= 4 {
					o.key.ifindex = int(binary.NativeEndian.Uint32(v))
				}
			case unix.NHA_GATEWAY:
				o.key.gw, _ = netip.AddrFromSlice(v)
			case unix.NHA_GROUP:
				isGroup = true
				for ; len(v) >= 8; v = v[8:] {
					w := int(v[4]) | int(v[5])<<8 // weight, weight_high
					grp = append(grp, grpEntry{id: binary.NativeEndian.Uint32(v), weight: w + 1})
				}
			case unix.NHA_GROUP_TYPE:
				if len(v) >= 2 {
					gtype = binary.NativeEndian.Uint16(v)
				}
			case nhaResGroup:
				forAttrs(v, func(t uint16, v []byte) {
					switch {
					case t == nhaResGroupBuckets && len(v) >= 2:
						res.buckets = binary.NativeEndian.Uint16(v)
					case t == nhaResGroupIdleTimer && len(v) >= 4:
						res.idle = binary.NativeEndian.Uint32(v)
					}
				})
			}
		})
		if proto != m.protocol {
			taken[id] = true
			for _, e := range grp {
				m.markForeignMember(e.id) // keep our objects others use
			}
			return nil
		}
		if isGroup {
			groups[id] = grp
			offload[id] = nhOffload(binary.NativeEndian.Uint32(data[4:]))
			if gtype == nexthopGrpTypeRes {
				if res.buckets == 0 {
					res.buckets = 1 // resilient whatever it reports
				}
				kinds[id] = res
			}
			return nil
		}
		o.id, o.key.fam = id, fam
		objs[id] = &o
		return nil
	})
	if err != nil {
		return fmt.Errorf("dump nexthops: %w", err)
	}
	m.objs, m.byKey, m.taken = objs, make(map[nhKey]*nhObject, len(objs)), taken
	for _, o := range objs {
		m.byKey[o.key] = o
	}
	old := m.groups
	m.groups, m.bySet = make(map[uint32]*nhGroup), make(map[string]*nhGroup)
	defer m.publishGroupChanges(old)
	for id, entries := range groups {
		if entries == nil {
			continue
		}
		g := &nhGroup{id: id, res: kinds[id], offload: offload[id]}
		var fam uint8
		ok := true
		for _, e := range entries {
			o := objs[e.id]
			if o == nil {
				ok = false // a member that is not ours: leave the group alone
				break
			}
			g.members = append(g.members, NextHop{Gateway: o.key.gw, Ifindex: o.key.ifindex, Weight: e.weight})
			fam = o.key.fam
		}
		if !ok {
			m.taken[id] = true
			continue
		}
		r := Route{NextHops: g.members}
		r.normalizeNextHops()
		g.members = r.NextHops
		// The route family of a group is not stored in the kernel; a
		// group over gateways is keyed by its members' family, which is
		// what setKey gives routes of that family.
		g.set = setKey(fam, g.members)
		m.groups[id] = g
		if _, dup := m.bySet[g.key()]; !dup {
			m.bySet[g.key()] = g
		}
	}
	return nil
}

func (m *nhManager) markForeignMember(id uint32) {
	if m.foreignIn == nil {
		m.foreignIn = make(map[uint32]bool)
	}
	m.foreignIn[id] = true
}

// list is the dataplane's list: it dumps nexthops and the routes of all
// tables (every route that uses a nexthop id counts towards usage) and
// returns the routes of table marked with the protocol.
func (m *nhManager) list(ctx context.Context, table, protocol int, sink *foreignSink) ([]Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.foreignIn = nil
	m.gws.forget() // a resync looks at everything afresh
	if err := m.dumpNexthops(); err != nil {
		return nil, err
	}
	var out []Route
	var usage map[uint32]int
	var d routeDecoder
	reset := func() {
		out, usage = out[:0], make(map[uint32]int)
		if sink != nil {
			sink.taken, sink.routes = true, sink.routes[:0]
		}
	}
	err := dumpRoutes(ctx, m.c, 0, reset, func(data []byte) {
		_, _, proto, flags, tbl, ok := decodeRouteHeader(data)
		if !ok || flags&unix.RTM_F_CLONED != 0 {
			return
		}
		if id := nhidOf(data); id != 0 {
			usage[id]++
		}
		if tbl != table || proto != protocol {
			if sink != nil && tbl == table {
				if kr, ok := d.decode(data); ok {
					sink.routes = append(sink.routes, kr.route)
				}
			}
			return
		}
		kr, ok := d.decode(data)
		if ok {
			if g := m.groups[kr.route.nhg]; g != nil && !m.fits(g, len(g.members)) {
				// A group of the wrong kind (the option changed): the
				// route must move to a new group.
				kr.route.regroup = true
			}
			out = append(out, kr.route)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dump routes of all tables for table %d: %w", table, err)
	}
	m.usage = usage
	m.synced = true
	return mergeSiblings(out), nil
}

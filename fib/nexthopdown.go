package fib

import (
	"context"
	"net/netip"
	"slices"
)

// Prefix-independent failover.
//
// When a BGP session dies, GoBGP withdraws the neighbor's paths one prefix
// at a time, and a million routes take seconds to reach the Table as
// SetRoutes. NextHopDown is the input one level up: "gateway gw is gone".
// The next Apply first rewrites every nexthop group that contains gw
// without it (O(groups), one batch of RTM_NEWNEXTHOP replaces), so the
// kernel stops using gw before any per-route work; only then does it bring
// its own views up to date.
//
// The mark filters gw out of every desired next-hop set (nhSet.eff) that
// has other next hops, so:
//   - routes that still want gw (their withdrawal has not arrived yet)
//     compare equal to the rewritten kernel routes: nothing is written
//     back, and the group is not moved back to gw;
//   - the withdrawals, when they arrive, find the kernel already right:
//     no write at all, not even bookkeeping;
//   - the mark ends by itself once no desired route wants gw any more
//     (every route that did was withdrawn or changed: a route that later
//     wants gw again is new and written as usual), or with NextHopUp (the
//     session came back before the withdrawals; the groups get gw back).
//
// A group whose only next hop is gw is left alone, not pointed at a
// blackhole: its routes will be withdrawn, and then a covering route (a
// default, an aggregate) takes their traffic, which a blackhole would drop;
// until then the gateway may well still forward (only its BGP session is
// known to be gone).
//
// Only with nexthop groups (ModeNexthopGroups): inline next hops need one
// write per route anyway, which the withdrawals do.
//
// Groups are shared by the Tables of a Kernel; NextHopDown rewrites them
// for all, but only the calling Table's views follow. A namespace with
// several Tables must mark the gateway down in each (switchd has one).

// NextHopDown marks gw as gone: the next Apply rewrites every nexthop group
// containing gw without it before anything else, then leaves out gw from
// every desired route that has another next hop, until NextHopUp or until
// no desired route wants gw any more. Call Apply right after it. It does
// nothing without nexthop groups or for an invalid address.
func (t *Table) NextHopDown(gw netip.Addr) {
	if !t.dp.hasGroups() || !gw.IsValid() {
		return
	}
	gw = gw.Unmap()
	if t.down[gw] {
		return
	}
	if t.down == nil {
		t.down = make(map[netip.Addr]bool)
	}
	t.down[gw] = true
	t.downQueued = append(t.downQueued, gw)
	t.recomputeEff()
}

// NextHopUp ends NextHopDown's mark on gw: routes that want gw get it back
// (a group rewrite at the next Apply). Unmarked gateways are ignored.
func (t *Table) NextHopUp(gw netip.Addr) {
	gw = gw.Unmap()
	if !t.down[gw] {
		return
	}
	delete(t.down, gw)
	t.downQueued = slices.DeleteFunc(t.downQueued, func(a netip.Addr) bool { return a == gw })
	t.recomputeEff()
	// Only routes that want gw compare differently now.
	wanted := false
	for _, s := range t.sets {
		if hasGateway(s.nhs, gw) {
			wanted = true
			break
		}
	}
	if !wanted {
		return
	}
	for k, e := range t.routes {
		if e.dset != nil && hasGateway(e.dset.nhs, gw) {
			t.updatePendingEntry(k, &e)
		}
	}
}

// DownNextHops returns the gateways marked down, sorted.
func (t *Table) DownNextHops() []netip.Addr {
	out := make([]netip.Addr, 0, len(t.down))
	for a := range t.down {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// applyDown rewrites the groups of the queued down gateways, then makes
// the kernel view follow (the routes over a rewritten group now use its
// new members) and recomputes pending for every key the mark may have
// changed. The kernel is done after the first step; the rest is
// bookkeeping, O(routes).
func (t *Table) applyDown(ctx context.Context) {
	gws := t.downQueued
	t.downQueued = nil
	rewritten, writes := t.dp.dropGateways(ctx, gws)
	t.stats.Nexthops += uint64(writes)
	t.log.Info("fib: next hops down; groups rewritten without them", "gateways", gws, "groups", len(rewritten))
	// A key whose effective wish changed either wants a gateway that is
	// down and is in sync (its kernel route holds that gateway) or is
	// pending already: the two loops below see all of them.
	for k, e := range t.routes {
		if !e.inKernel() {
			continue
		}
		if nhs, ok := rewritten[e.knhg]; ok && e.knhg != 0 {
			e.knhs = nhs
			t.put(k, e)
			t.published(k)
			t.updatePendingEntry(k, &e)
			continue
		}
		if hasAnyGateway(e.knhs, gws) {
			t.updatePendingEntry(k, &e)
		}
	}
	for k := range t.pending {
		t.updatePending(k)
	}
	for _, gw := range gws {
		t.forgetDown([]NextHop{{Gateway: gw}})
	}
}

// effective is nhs without the gateways marked down; nhs itself if none
// is down or if nothing would be left.
func (t *Table) effective(nhs []NextHop) []NextHop {
	if len(t.down) == 0 {
		return nhs
	}
	n := 0
	for _, nh := range nhs {
		if !t.down[nh.Gateway] {
			n++
		}
	}
	if n == 0 || n == len(nhs) {
		return nhs
	}
	out := make([]NextHop, 0, n)
	for _, nh := range nhs {
		if !t.down[nh.Gateway] {
			out = append(out, nh)
		}
	}
	if len(out) == 1 {
		out[0].Weight = 1 // as Normalize: no weight on a single path
	}
	return out
}

func (t *Table) recomputeEff() {
	for _, s := range t.sets {
		t.setEff(s)
	}
}

// forgetDown ends the mark of each gateway of nhs that is down and that
// no desired next-hop set contains any more: its routes are all gone, and
// a route that wants it from now on is a new wish.
func (t *Table) forgetDown(nhs []NextHop) {
	for _, nh := range nhs {
		if !t.down[nh.Gateway] || slices.Contains(t.downQueued, nh.Gateway) {
			continue
		}
		used := false
		for _, s := range t.sets {
			if hasGateway(s.nhs, nh.Gateway) {
				used = true
				break
			}
		}
		if !used {
			delete(t.down, nh.Gateway)
		}
	}
}

func hasGateway(nhs []NextHop, gw netip.Addr) bool {
	for _, nh := range nhs {
		if nh.Gateway == gw {
			return true
		}
	}
	return false
}

func hasAnyGateway(nhs []NextHop, gws []netip.Addr) bool {
	for _, nh := range nhs {
		if slices.Contains(gws, nh.Gateway) {
			return true
		}
	}
	return false
}

// dropGateways rewrites in place every group of switchd's that has one of
// gws among its members and others besides, without them, in one batch.
// It returns the new members of each group rewritten and the writes sent.
func (m *nhManager) dropGateways(ctx context.Context, gws []netip.Addr) (map[uint32][]NextHop, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil {
		return nil, 0
	}
	var writes []groupWrite
	var targets []*target
	for id, g := range m.groups {
		rest := make([]NextHop, 0, len(g.members))
		for _, nh := range g.members {
			if !slices.Contains(gws, nh.Gateway) {
				rest = append(rest, nh)
			}
		}
		if len(rest) == 0 || len(rest) == len(g.members) || len(g.set) == 0 {
			continue
		}
		if len(rest) == 1 {
			rest[0].Weight = 1
		}
		fam := g.set[0] // setKey's first byte: the group's family
		t := &target{fam: fam, set: setKey(fam, rest), members: rest}
		writes = append(writes, groupWrite{id: id, t: t, replace: true})
		targets = append(targets, t)
	}
	if len(writes) == 0 {
		return nil, 0
	}
	objErr, n := m.ensureObjects(targets) // the members exist: nothing to send
	grpErr, w := m.writeGroups(writes, objErr)
	done := make(map[uint32][]NextHop, len(writes))
	for _, g := range writes {
		if grpErr[g.id] == nil {
			done[g.id] = m.groups[g.id].members
		} else {
			m.log.Warn("fib: rewrite nexthop group without a down next hop", "group", g.id, "err", grpErr[g.id])
		}
	}
	return done, n + w
}

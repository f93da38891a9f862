package fib

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Recursive next-hop resolution (WithNextHopResolution).
//
// A BGP next hop need not be on a link of this router: an iBGP peer or a
// multihop eBGP peer announces its loopback, which is reachable only
// through another route. The kernel refuses such a gateway ("not directly
// connected"), so the Table resolves it the way FRR's zebra does
// (nexthop_active): longest-prefix match of the gateway over the routes
// of the same table — switchd's own desired routes and the routes of
// every other owner (connected, static, other daemons'), since the kernel
// table is what forwards — and the route is programmed with the next hops
// of the resolving route. The desired route keeps its BGP next hops; only
// the nexthop set's eff (what the kernel gets) changes, so routes that
// share a set share its resolution and their kernel nexthop group, and a
// resolver that changes is one group rewrite for all of them (moveGroups).
//
// The rules:
//   - A gateway with an interface, a link-local one, or one covered by a
//     device route of the table (any owner: a connected subnet, a
//     workload's /32) is on link and used as it is: no lookup, no work
//     per route. That is the kernel's own IPv4 test (fib_check_nh looks
//     only at link-scope routes). Every other gateway is recursive.
//   - A recursive gateway takes the next hops of the most specific route
//     covering it (lowest metric first on a tie) that is usable: a route
//     with gateways contributes them, a device hop becomes the gateway on
//     that device; a blackhole, unreachable or prohibit route, or only a
//     default route (FRR's default: no resolution via default), makes it
//     unresolved. One of switchd's own routes is usable if its own next
//     hops resolve (recursively, at most maxResolveDepth levels); one that
//     does not is not in the kernel, and the lookup goes on to the next
//     candidate, as the kernel's lookup would.
//   - A route never resolves through itself: a gateway being resolved
//     contributes nothing further down its own chain, so a route whose
//     gateway is reachable only through that route is refused.
//   - ECMP: a route gets the union of what its gateways resolve to (a
//     gateway that does not resolve drops out); weights multiply.
//   - A route none of whose gateways resolves is unresolved: it is taken
//     out of the kernel (it would forward into nothing or into a stale
//     path), listed by Unresolved, and not pending, so InSync stays true
//     and honest: the kernel holds exactly what switchd can program. It
//     is installed again as soon as a change makes it resolve.
//
// Changes: the foreign routes come from each resync's dump (piggybacked
// on the dump the Table takes anyway) and from the Monitor's events
// (a Monitor made with WithNextHopResolution reports other owners' routes
// of its table); switchd's own from SetRoute and DeleteRoute. A change
// whose prefix covers a recursive gateway (or a device route that covers
// any gateway) marks the resolution dirty; the next Apply re-resolves
// every recursive gateway (few: peers' loopbacks) and rewrites the routes
// whose resolved next hops changed. With no recursive gateway, an own
// route change costs a few field checks.

// maxResolveDepth bounds how many routes deep a gateway is resolved
// through switchd's own recursive routes.
const maxResolveDepth = 4

// ErrUnresolved is wrapped by the errors Unresolved and Resolution report
// for a route none of whose next hops resolves.
var ErrUnresolved = errors.New("next hop does not resolve")

// RTN_PROHIBIT: traffic to it is refused, as with unreachable.
const typeProhibit RouteType = 8

// resolution is the Table's resolution state (nil without the option).
type resolution struct {
	viaDefault bool
	ready      bool // a dump has filled foreign: classification is meaningful
	dirty      bool // a change may alter a resolution: Apply re-resolves

	// foreign holds the routes of other owners by prefix (prefixKey),
	// sorted by metric; fdev and odev count device routes by prefix,
	// foreign and switchd's own.
	foreign map[rkey][]fRoute
	fdev    map[rkey]int32
	odev    map[rkey]int32
	// lens marks the prefix lengths that hold a route of either owner and
	// prios the metrics of switchd's routes (both only grow): the lookup
	// probes only those.
	lens  [2][3]uint64
	prios []uint32

	// gws holds every gateway without an interface of a desired set;
	// recursive counts those that are not on link.
	gws       map[netip.Addr]*gwState
	recursive int
	// watch holds the gateways tracked for a routing protocol (track.go);
	// no route refers to it.
	watch *nhSet
}

// fRoute is a route of another owner, as far as resolution needs it.
type fRoute struct {
	prio uint32
	typ  RouteType
	dev  int // the interface of a device route; 0 if it has gateways
	nhs  []NextHop
}

type gwState struct {
	sets   map[*nhSet]struct{}
	onlink bool
	nhs    []NextHop // a recursive gateway's resolved next hops (nil: unresolved)
	err    error     // why it does not resolve
}

func newResolution() *resolution {
	return &resolution{
		foreign: make(map[rkey][]fRoute),
		fdev:    make(map[rkey]int32),
		odev:    make(map[rkey]int32),
		gws:     make(map[netip.Addr]*gwState),
	}
}

// unresolved reports a desired route that the kernel must not hold
// because none of its next hops resolves.
func (e *entry) unresolved() bool { return e.dset != nil && e.dset.unres }

func famIdx(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

func (rs *resolution) noteLen(v6 bool, bits uint8) {
	rs.lens[famIdx(v6)][bits/64] |= 1 << (bits % 64)
}

func (rs *resolution) hasLen(v6 bool, bits int) bool {
	return rs.lens[famIdx(v6)][bits/64]&(1<<(bits%64)) != 0
}

func (rs *resolution) notePrio(p uint32) {
	if len(rs.prios) > 0 && rs.prios[0] == p || slices.Contains(rs.prios, p) {
		return
	}
	rs.prios = append(rs.prios, p)
	slices.Sort(rs.prios)
}

// prefixKey is the key of the prefix of bits bits around a, metric and
// TOS 0: the key of resolution's maps, and with a metric that of a route.
func prefixKey(table int, a netip.Addr, bits int) rkey {
	p, _ := a.Prefix(bits)
	return keyOf(RouteKey{Table: table, Dst: p})
}

// covers reports whether the prefix of key k contains a.
func covers(k rkey, a netip.Addr) bool {
	if k.v6 != a.Is6() {
		return false
	}
	p, _ := a.Prefix(int(k.bits))
	pk := keyOf(RouteKey{Dst: p})
	return pk.hi == k.hi && pk.lo == k.lo
}

func isDevSet(s *nhSet) bool {
	return s != nil && len(s.nhs) == 1 && !s.nhs[0].Gateway.IsValid() && s.nhs[0].Ifindex != 0
}

// coversAny reports whether the prefix of k covers a tracked gateway
// (only recursive ones if onlyRecursive).
func (rs *resolution) coversAny(k rkey, onlyRecursive bool) bool {
	for gw, st := range rs.gws {
		if (!onlyRecursive || !st.onlink) && covers(k, gw) {
			return true
		}
	}
	return false
}

// initEff sets a new set's eff, tracking its gateways first.
func (t *Table) initEff(s *nhSet) {
	if t.rs != nil {
		t.track(s)
	}
	t.setEff(s)
}

// setEff computes what the kernel gets for set s: its next hops without
// those NextHopDown marked, with recursive gateways replaced by what they
// resolve to. It uses the gateways' current resolution (gws).
func (t *Table) setEff(s *nhSet) {
	eff := t.effective(s.nhs)
	s.rec, s.unres = false, false
	rs := t.rs
	if rs == nil || !rs.ready || rs.recursive == 0 {
		s.eff = eff
		return
	}
	for _, nh := range eff {
		if st := rs.gws[nh.Gateway]; nh.Ifindex == 0 && st != nil && !st.onlink {
			s.rec = true
			break
		}
	}
	if !s.rec {
		s.eff = eff
		return
	}
	var out []NextHop
	for _, nh := range eff {
		st := rs.gws[nh.Gateway]
		if nh.Ifindex != 0 || st == nil || st.onlink {
			out = append(out, nh)
			continue
		}
		out = appendScaled(out, st.nhs, nh.Weight)
	}
	s.eff = mergeNextHops(out)
	s.unres = len(s.eff) == 0
}

// appendScaled appends nhs with their weights multiplied by w.
func appendScaled(out, nhs []NextHop, w int) []NextHop {
	for _, r := range nhs {
		r.Weight = min(256, max(1, r.Weight)*max(1, w))
		out = append(out, r)
	}
	return out
}

// mergeNextHops sorts nhs and merges those to the same gateway and
// interface (weights add up); a hop without an interface merges into one
// with (the kernel would resolve it to that one).
func mergeNextHops(nhs []NextHop) []NextHop {
	if len(nhs) == 0 {
		return nil
	}
	slices.SortFunc(nhs, func(a, b NextHop) int {
		return cmp.Or(a.Gateway.Compare(b.Gateway), cmp.Compare(a.Ifindex, b.Ifindex))
	})
	out := nhs[:0]
	for _, nh := range nhs {
		if n := len(out); n > 0 && out[n-1].Gateway == nh.Gateway && (out[n-1].Ifindex == nh.Ifindex || out[n-1].Ifindex == 0) {
			out[n-1].Weight = min(256, out[n-1].Weight+nh.Weight)
			out[n-1].Ifindex = nh.Ifindex
			continue
		}
		out = append(out, nh)
	}
	r := Route{NextHops: out}
	r.normalizeNextHops()
	return r.NextHops
}

// track registers the gateways of a new set, resolving those not seen yet.
func (t *Table) track(s *nhSet) {
	rs := t.rs
	for _, nh := range s.nhs {
		if nh.Ifindex != 0 || !nh.Gateway.IsValid() {
			continue
		}
		st := rs.gws[nh.Gateway]
		if st == nil {
			st = &gwState{sets: make(map[*nhSet]struct{}), onlink: true}
			rs.gws[nh.Gateway] = st
			if rs.ready {
				t.evalGateway(nh.Gateway, st)
			}
		}
		st.sets[s] = struct{}{}
	}
}

// untrack forgets a set that no route wants any more.
func (t *Table) untrack(s *nhSet) {
	rs := t.rs
	for _, nh := range s.nhs {
		st := rs.gws[nh.Gateway]
		if st == nil || nh.Ifindex != 0 {
			continue
		}
		delete(st.sets, s)
		if len(st.sets) == 0 {
			if !st.onlink {
				rs.recursive--
			}
			delete(rs.gws, nh.Gateway)
		}
	}
}

// evalGateway classifies gw and resolves it if it is recursive; it
// reports whether the outcome changed.
func (t *Table) evalGateway(gw netip.Addr, st *gwState) bool {
	onlink := t.onLink(gw)
	var nhs []NextHop
	var err error
	if !onlink {
		nhs, err = t.resolveVia(gw, 0, nil)
	}
	changed := onlink != st.onlink || !slices.Equal(nhs, st.nhs) || fmt.Sprint(err) != fmt.Sprint(st.err)
	if onlink != st.onlink {
		if onlink {
			t.rs.recursive--
		} else {
			t.rs.recursive++
		}
	}
	if changed && !onlink {
		if err != nil {
			t.log.Info("fib: next hop does not resolve", "gateway", gw, "reason", err)
		} else {
			t.log.Info("fib: recursive next hop resolved", "gateway", gw, "via", nhs)
		}
	}
	st.onlink, st.nhs, st.err = onlink, nhs, err
	return changed
}

// onLink reports whether gw is used as it is: link-local, or covered by
// a device route of the table.
func (t *Table) onLink(gw netip.Addr) bool {
	if gw.IsLinkLocalUnicast() {
		return true
	}
	rs := t.rs
	for bits := gw.BitLen(); bits >= 0; bits-- {
		if !rs.hasLen(gw.Is6(), bits) {
			continue
		}
		pk := prefixKey(t.table, gw, bits)
		if rs.fdev[pk] > 0 || rs.odev[pk] > 0 {
			return true
		}
	}
	return false
}

// candidate is a route that may resolve a gateway.
type candidate struct {
	prio uint32
	typ  RouteType
	f    *fRoute // another owner's route, or
	set  *nhSet  // switchd's (nil unless unicast)
}

// resolveVia resolves the recursive gateway gw: the next hops of the most
// specific usable route covering it. visiting holds the gateways whose
// resolution is under way further up (a loop contributes nothing).
func (t *Table) resolveVia(gw netip.Addr, depth int, visiting []netip.Addr) ([]NextHop, error) {
	if depth > maxResolveDepth {
		return nil, fmt.Errorf("more than %d levels of recursion", maxResolveDepth)
	}
	visiting = append(visiting, gw)
	rs := t.rs
	var cands []candidate
	for bits := gw.BitLen(); bits >= 0; bits-- {
		if !rs.hasLen(gw.Is6(), bits) {
			continue
		}
		pk := prefixKey(t.table, gw, bits)
		cands = cands[:0]
		for i := range rs.foreign[pk] {
			f := &rs.foreign[pk][i]
			cands = append(cands, candidate{prio: f.prio, typ: f.typ, f: f})
		}
		for _, p := range rs.prios {
			k := pk
			k.priority = p
			if e, ok := t.routes[k]; ok && e.wanted() {
				cands = append(cands, candidate{prio: p, typ: e.dtyp, set: e.dset})
			}
		}
		if len(cands) == 0 {
			continue
		}
		if bits == 0 && !rs.viaDefault {
			return nil, errors.New("only a default route covers it")
		}
		slices.SortStableFunc(cands, func(a, b candidate) int { return cmp.Compare(a.prio, b.prio) })
		for _, c := range cands {
			switch c.typ {
			case Unicast:
			case Blackhole, Unreachable, typeProhibit:
				return nil, fmt.Errorf("covered by a route of type %d (%v metric %d)", c.typ, pk.routeKey().Dst, c.prio)
			default:
				continue
			}
			var nhs []NextHop
			if c.f != nil {
				nhs = onDevice(nil, c.f.nhs, gw, 1)
			} else if c.set != nil {
				nhs = t.ownResolved(c.set, gw, depth, visiting)
			}
			if len(nhs) > 0 {
				return nhs, nil
			}
			// Not in the kernel (switchd's route does not resolve
			// either): the kernel's lookup would go on, and so do we.
		}
	}
	return nil, errors.New("no route covers it")
}

// onDevice appends nhs to out, a device hop as gw on that device.
func onDevice(out, nhs []NextHop, gw netip.Addr, w int) []NextHop {
	for _, nh := range nhs {
		if !nh.Gateway.IsValid() {
			nh.Gateway = gw
		}
		out = appendScaled(out, []NextHop{nh}, w)
	}
	return mergeNextHops(out)
}

// ownResolved is what one of switchd's routes over set s forwards gw's
// traffic to, resolving its own recursive gateways one level deeper.
func (t *Table) ownResolved(s *nhSet, gw netip.Addr, depth int, visiting []netip.Addr) []NextHop {
	var out []NextHop
	for _, nh := range t.effective(s.nhs) {
		switch {
		case !nh.Gateway.IsValid():
			out = onDevice(out, []NextHop{nh}, gw, 1)
		case nh.Ifindex != 0 || t.onLink(nh.Gateway):
			out = append(out, nh)
		case slices.Contains(visiting, nh.Gateway):
			// A loop: this path leads back to a gateway being resolved.
		default:
			sub, _ := t.resolveVia(nh.Gateway, depth+1, visiting)
			out = appendScaled(out, sub, nh.Weight)
		}
	}
	return mergeNextHops(out)
}

// ownChanged is told that switchd's desired route at k changed from set
// old to set s (nil: none, or not unicast).
func (t *Table) ownChanged(k rkey, old, s *nhSet) {
	rs := t.rs
	rs.noteLen(k.v6, k.bits)
	rs.notePrio(k.priority)
	if k.tos != 0 {
		return
	}
	pk := k
	pk.priority = 0
	dev := false
	if isDevSet(old) {
		if rs.odev[pk]--; rs.odev[pk] <= 0 {
			delete(rs.odev, pk)
		}
		dev = true
	}
	if isDevSet(s) {
		rs.odev[pk]++
		dev = true
	}
	if !rs.ready || rs.dirty {
		return
	}
	if dev && rs.coversAny(pk, false) || rs.recursive > 0 && rs.coversAny(pk, true) {
		rs.dirty = true
	}
}

// onForeign takes another owner's route change (from a Monitor made with
// WithNextHopResolution) into the resolution state.
func (t *Table) onForeign(ev RouteEvent) {
	rs := t.rs
	r := ev.Route
	if rs == nil || !rs.ready || r.Key.Table != t.table || r.Key.TOS != 0 {
		return
	}
	f := fRouteOf(r)
	pk := keyOf(RouteKey{Table: t.table, Dst: r.Key.Dst})
	list := rs.foreign[pk]
	i := slices.IndexFunc(list, func(x fRoute) bool { return x.prio == f.prio && x.dev == f.dev })
	if i >= 0 {
		if list[i].dev != 0 && list[i].typ == Unicast {
			rs.fdev[pk]--
		}
		list = slices.Delete(list, i, i+1)
	}
	if !ev.Deleted {
		list = append(list, f)
		slices.SortStableFunc(list, func(a, b fRoute) int { return cmp.Compare(a.prio, b.prio) })
		if f.dev != 0 && f.typ == Unicast {
			rs.fdev[pk]++
		}
	}
	if rs.fdev[pk] <= 0 {
		delete(rs.fdev, pk)
	}
	if len(list) == 0 {
		delete(rs.foreign, pk)
	} else {
		rs.foreign[pk] = list
	}
	rs.noteLen(pk.v6, pk.bits)
	if !rs.dirty && rs.coversAny(pk, f.dev == 0) {
		rs.dirty = true
	}
}

func fRouteOf(r Route) fRoute {
	f := fRoute{prio: uint32(r.Key.Priority), typ: r.Type, nhs: slices.Clone(r.NextHops)}
	if r.Type == Unicast && len(r.NextHops) == 1 && !r.NextHops[0].Gateway.IsValid() {
		f.dev = r.NextHops[0].Ifindex
	}
	return f
}

// foreignSink collects the other owners' routes of a table during a dump
// (the dataplanes that dump the whole table hand them over).
type foreignSink struct {
	table  int
	taken  bool // the dataplane supports it
	routes []Route
}

// foreignSink arms a resync's dump to collect foreign routes; the
// function it returns takes them in once the dump succeeded. Both are
// no-ops without resolution.
func (t *Table) foreignSink() (*foreignSink, func()) {
	if t.rs == nil {
		return nil, func() {}
	}
	s := &foreignSink{table: t.table}
	return s, func() { t.tookForeign(s) }
}

// tookForeign replaces the foreign routes with a dump's and re-resolves
// every gateway. The caller recomputes pending for every key.
func (t *Table) tookForeign(s *foreignSink) {
	rs := t.rs
	if !s.taken {
		return
	}
	clear(rs.foreign)
	clear(rs.fdev)
	for _, r := range s.routes {
		if r.Key.TOS != 0 {
			continue
		}
		f := fRouteOf(r)
		pk := keyOf(RouteKey{Table: t.table, Dst: r.Key.Dst})
		rs.foreign[pk] = append(rs.foreign[pk], f)
		if f.dev != 0 && f.typ == Unicast {
			rs.fdev[pk]++
		}
		rs.noteLen(pk.v6, pk.bits)
	}
	for _, list := range rs.foreign {
		slices.SortStableFunc(list, func(a, b fRoute) int { return cmp.Compare(a.prio, b.prio) })
	}
	rs.ready = true
	t.reresolve(false)
}

// reresolve evaluates every tracked gateway again and recomputes the sets
// whose gateways changed; with pending, it also recomputes pending for
// the routes of those sets (one pass over the routes, only if any set
// changed).
func (t *Table) reresolve(pending bool) {
	rs := t.rs
	rs.dirty = false
	changed := make(map[*nhSet]bool)
	for gw, st := range rs.gws {
		if t.evalGateway(gw, st) {
			for s := range st.sets {
				changed[s] = true
			}
		}
	}
	for s := range changed {
		before, unres := s.eff, s.unres
		t.setEff(s)
		if unres == s.unres && slices.Equal(before, s.eff) {
			delete(changed, s)
		} else if s.unres != unres {
			t.log.Info("fib: routes over next hops changed resolvability", "next_hops", s.nhs, "resolved", !s.unres)
		}
	}
	if !pending || len(changed) == 0 {
		return
	}
	for k, e := range t.routes {
		if e.dset != nil && changed[e.dset] {
			t.updatePendingEntry(k, &e)
		}
	}
}

// Unresolved returns the desired routes that are not in the kernel
// because none of their next hops resolves, sorted by key, each with the
// reason (wrapping ErrUnresolved).
func (t *Table) Unresolved() []RouteError {
	if t.rs == nil {
		return nil
	}
	var keys []rkey
	for k, e := range t.routes {
		if e.wanted() && e.unresolved() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareRKey)
	out := make([]RouteError, 0, len(keys))
	for _, k := range keys {
		out = append(out, RouteError{Key: k.routeKey(), Err: t.unresolvedErr(t.routes[k].dset)})
	}
	return out
}

func (t *Table) unresolvedErr(s *nhSet) error {
	var why []string
	for _, nh := range s.nhs {
		if st := t.rs.gws[nh.Gateway]; st != nil && !st.onlink && st.err != nil {
			why = append(why, fmt.Sprintf("%v: %v", nh.Gateway, st.err))
		}
	}
	return fmt.Errorf("%w: %s", ErrUnresolved, strings.Join(why, "; "))
}

// Resolution returns the next hops the kernel gets for the desired route
// at k: its own, or for recursive ones what they resolve to; an error
// wrapping ErrUnresolved if none resolves, and one saying so if k is not
// desired.
func (t *Table) Resolution(k RouteKey) ([]NextHop, error) {
	if k.Table == 0 {
		k.Table = t.table
	}
	e, ok := t.routes[keyOf(k.normalized())]
	if !ok || !e.wanted() {
		return nil, fmt.Errorf("resolution of route %v: not desired", k)
	}
	if e.dset == nil {
		return nil, nil
	}
	if e.unresolved() {
		return nil, fmt.Errorf("route %v: %w", k, t.unresolvedErr(e.dset))
	}
	return slices.Clone(e.dset.eff), nil
}

// RecursiveNextHops returns the gateways in use that are not on link,
// with what each resolves to (nil: unresolved).
func (t *Table) RecursiveNextHops() map[netip.Addr][]NextHop {
	out := make(map[netip.Addr][]NextHop)
	if t.rs == nil {
		return out
	}
	for gw, st := range t.rs.gws {
		if !st.onlink {
			out[gw] = slices.Clone(st.nhs)
		}
	}
	return out
}

package state

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/fib"
)

// The AFT (/network-instances/network-instance[name=DEFAULT]/afts) is
// fib's kernel view rendered on demand: a gNMI Source (gnmi/source.go)
// the server walks for Get, ONCE, POLL and SAMPLE, never cached, since a
// cached copy costs ~2.4 KB per leaf and a million routes have several
// leaves each. Changes go out as they happen: the daemon hands the
// route and group feeds to Routes and Groups, which publish updates and
// deletes under the AFT's prefix; the server passes those to ON_CHANGE
// subscribers only.
//
// Leaves are built by hand, not through ygot (whose reflection would
// cost more than the rest of a sync together); TestAFTJSON checks them
// against the generated schema. A list entry's key goes out as its
// state leaf (state/prefix) and in the path, not a third time as the key
// leaf beside state: Get's JSON puts the keys back in each entry, and a
// sync of 100,000 routes is a quarter shorter without them.

// RouteView is fib's view of a Table's routes in the kernel
// (fib.RouteView): safe from any goroutine.
type RouteView interface {
	Walk(fn func([]fib.AFTRoute) error) error
	Lookup(p netip.Prefix) (fib.AFTRoute, bool)
}

// GroupView is fib's view of the nexthop groups and objects in the
// kernel (*fib.Kernel's AFT): safe from any goroutine.
type GroupView interface {
	AFT() ([]fib.AFTGroup, []fib.AFTNextHop)
}

// AFT renders fib's views. Walk may run on any goroutine; Routes and
// Groups are called from one (the daemon's loop).
type AFT struct {
	routes RouteView
	groups GroupView
	// origin is the origin-protocol of a route by its metric ("" for
	// none).
	origin func(r fib.AFTRoute) string
	// ifname is an interface's name by index ("" if unknown).
	ifname func(ifindex int) string
	pub    Publisher

	// The groups and next hops last published (the loop's; a few).
	groupsSeen map[uint64]fib.AFTGroup
	nhsSeen    map[uint64]fib.AFTNextHop

	// Routes to an interface alone (workloads' /32s) carry their next
	// hop inline, in no kernel group: each interface gets a group and a
	// next hop of the AFT's own (ifGroupBase + ifindex). devRoutes is
	// such routes' interfaces (the loop's); devs counts them per
	// interface, read by walks.
	devRoutes map[netip.Prefix]int
	mu        sync.Mutex // guards devs
	devs      map[int]int

	// hardware makes every entry carry its hardware flags
	// (state/hardware), false ones included: set by the options on a
	// machine with a switch ASIC, and for good once a route carries a
	// flag. Off, an entry without flags has none of those leaves (three
	// more per route on a server that never has one).
	hardware atomic.Bool
	// groupsHW is whether the groups were last rendered with hardware
	// leaves (the loop's).
	groupsHW bool
}

// ifGroupBase is added to an interface's index for the id of the group
// and the next hop of routes to that interface alone: above every
// kernel nexthop id (32-bit).
const ifGroupBase = 1 << 32

// devIfindex is the interface of a route to an interface alone; 0 for
// any other.
func devIfindex(r fib.AFTRoute) int {
	if r.Group == 0 && len(r.NextHops) == 1 && !r.NextHops[0].Gateway.IsValid() {
		return r.NextHops[0].Ifindex
	}
	return 0
}

// groupOf is the AFT group of a route (0: none).
func groupOf(r fib.AFTRoute) uint64 {
	if i := devIfindex(r); i != 0 {
		return ifGroupBase + uint64(i)
	}
	return uint64(r.Group)
}

// setDev records p's interface-alone route on ifindex (0: none now) and
// reports whether the set of such interfaces changed.
func (a *AFT) setDev(p netip.Prefix, ifindex int) bool {
	old := a.devRoutes[p]
	if old == ifindex {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	changed := false
	if old != 0 {
		delete(a.devRoutes, p)
		if a.devs[old]--; a.devs[old] == 0 {
			delete(a.devs, old)
			changed = true
		}
	}
	if ifindex != 0 {
		a.devRoutes[p] = ifindex
		a.devs[ifindex]++
		changed = changed || a.devs[ifindex] == 1
	}
	return changed
}

// snapshot is the kernel's groups and next hops, with those of the
// interfaces routes reach alone.
func (a *AFT) snapshot() ([]fib.AFTGroup, []fib.AFTNextHop) {
	gs, nhs := a.groups.AFT()
	a.mu.Lock()
	ifs := slices.Sorted(maps.Keys(a.devs))
	a.mu.Unlock()
	for _, i := range ifs {
		id := ifGroupBase + uint64(i)
		gs = append(gs, fib.AFTGroup{ID: id, Members: []fib.AFTMember{{NextHop: id, Weight: 1}}})
		nhs = append(nhs, fib.AFTNextHop{ID: id, Ifindex: i})
	}
	return gs, nhs
}

// AFTOptions configure an AFT.
type AFTOptions struct {
	// Origin gives the origin-protocol (an INSTALL_PROTOCOL_TYPE
	// identity, "BGP") of a route; nil or "": none.
	Origin func(r fib.AFTRoute) string
	// Ifname names an interface by index; nil: no interface-ref.
	Ifname func(ifindex int) string
	// Hardware renders every entry's hardware flags from the start (a
	// switchdev machine); without it they appear with the first route
	// a driver flags.
	Hardware bool
}

// NewAFT returns the AFT of routes and groups, publishing changes to pub.
func NewAFT(routes RouteView, groups GroupView, pub Publisher, o AFTOptions) *AFT {
	a := &AFT{routes: routes, groups: groups, origin: o.Origin, ifname: o.Ifname, pub: pub,
		groupsSeen: map[uint64]fib.AFTGroup{}, nhsSeen: map[uint64]fib.AFTNextHop{},
		devRoutes: map[netip.Prefix]int{}, devs: map[int]int{}}
	if a.origin == nil {
		a.origin = func(fib.AFTRoute) string { return "" }
	}
	if a.ifname == nil {
		a.ifname = func(int) string { return "" }
	}
	a.hardware.Store(o.Hardware)
	// The interface-alone routes already in the kernel (the owner's
	// goroutine; later ones come through Routes).
	_ = routes.Walk(func(rs []fib.AFTRoute) error {
		for _, r := range rs {
			a.setDev(r.Prefix, devIfindex(r))
		}
		return nil
	})
	return a
}

// AFTPrefix is the path the AFT is served at (a Source's prefix).
func AFTPrefix() *gpb.Path { return &gpb.Path{Elem: aftElems()} }

func aftElems() []*gpb.PathElem {
	return []*gpb.PathElem{elem("network-instances"), elem("network-instance", "name", "DEFAULT"), elem("afts")}
}

// The cache-form positions of the parts of an AFT query: network-
// instances, network-instance, DEFAULT, afts, then these.
const (
	qPart = 4 // ipv4-unicast, ipv6-unicast, next-hop-groups, next-hops
	qKey  = 6 // an entry's prefix, a group's id, a next hop's index
)

// aftQuery is the AFT's prefix in cache form.
var aftQuery = []string{"network-instances", "network-instance", "DEFAULT", "afts"}

// Walk serves the server's reads (gnmi.Source): the leaves at or below
// query, a cache-form pattern. It narrows the walk by the query's part
// and key where they are given; the server filters the rest.
func (a *AFT) Walk(query []string, fn func(*gpb.Notification) error) error {
	for i, e := range aftQuery {
		if i < len(query) && query[i] != e && query[i] != "*" {
			return nil
		}
	}
	part, key := at(query, qPart), at(query, qKey)
	ts := time.Now().UnixNano()
	if part == "*" || part == "ipv4-unicast" || part == "ipv6-unicast" {
		if err := a.walkRoutes(ts, part, key, fn); err != nil {
			return err
		}
	}
	if part == "*" || part == "next-hop-groups" || part == "next-hops" {
		gs, nhs := a.snapshot()
		if part != "next-hops" {
			for _, g := range gs {
				if key == "*" || key == strconv.FormatUint(g.ID, 10) {
					if err := fn(a.groupNotification(ts, g)); err != nil {
						return err
					}
				}
			}
		}
		if part != "next-hop-groups" {
			for _, nh := range nhs {
				if key == "*" || key == strconv.FormatUint(nh.ID, 10) {
					if err := fn(a.nextHopNotification(ts, nh)); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// at is q[i], or "*" past its end.
func at(q []string, i int) string {
	if i < len(q) {
		return q[i]
	}
	return "*"
}

func (a *AFT) walkRoutes(ts int64, part, key string, fn func(*gpb.Notification) error) error {
	if key != "*" {
		p, err := netip.ParsePrefix(key)
		if err != nil {
			return nil // no such entry
		}
		r, ok := a.routes.Lookup(p)
		if !ok || part != "*" && part != familyPart(p) {
			return nil
		}
		return fn(a.routeNotification(ts, r))
	}
	return a.routes.Walk(func(rs []fib.AFTRoute) error {
		for _, r := range rs {
			if part != "*" && part != familyPart(r.Prefix) {
				continue
			}
			if err := fn(a.routeNotification(ts, r)); err != nil {
				return err
			}
		}
		return nil
	})
}

func familyPart(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ipv4-unicast"
	}
	return "ipv6-unicast"
}

// entryHead are the elements of the AFT entries' paths above the entry
// for each family, and leafElems the elements of their leaves' paths
// below it: shared by every route's notification, read only (the
// server and gRPC only read them), so a walk of a million routes does
// not allocate them a million times.
var (
	entryHead = map[bool][]*gpb.PathElem{
		true:  append(aftElems(), elem("ipv4-unicast")),
		false: append(aftElems(), elem("ipv6-unicast")),
	}
	leafElems = map[string][]*gpb.PathElem{
		"prefix":          {elem("state"), elem("prefix")},
		"next-hop-group":  {elem("state"), elem("next-hop-group")},
		"origin-protocol": {elem("state"), elem("origin-protocol")},
		"offloaded":       {elem("state"), elem("hardware"), elem("offloaded")},
		"trap":            {elem("state"), elem("hardware"), elem("trap")},
		"offload-failed":  {elem("state"), elem("hardware"), elem("offload-failed")},
	}
)

// entryElems is the path of p's AFT entry.
func entryElems(p netip.Prefix) []*gpb.PathElem {
	list := "ipv4-entry"
	if !p.Addr().Is4() {
		list = "ipv6-entry"
	}
	head := entryHead[p.Addr().Is4()]
	return append(head[:len(head):len(head)], &gpb.PathElem{Name: list, Key: map[string]string{"prefix": p.String()}})
}

// routeNotification is an AFT entry's leaves.
func (a *AFT) routeNotification(ts int64, r fib.AFTRoute) *gpb.Notification {
	// One allocation for the notification's messages (a walk renders a
	// million of them); the gRPC side only reads them.
	blk := &entryBlock{}
	ps := r.Prefix.String()
	head := entryHead[r.Prefix.Addr().Is4()]
	n := copy(blk.elems[:], head)
	list := "ipv4-entry"
	if !r.Prefix.Addr().Is4() {
		list = "ipv6-entry"
	}
	blk.entry = gpb.PathElem{Name: list, Key: map[string]string{"prefix": ps}}
	blk.elems[n] = &blk.entry
	blk.prefix.Elem = blk.elems[:n+1]
	// leaf adds the update of a leaf below the entry; its value is the
	// caller's to set.
	leaf := func(name string) *gpb.TypedValue {
		i := len(blk.us)
		blk.paths[i].Elem = leafElems[name]
		blk.upd[i] = gpb.Update{Path: &blk.paths[i], Val: &blk.vals[i]}
		blk.us = append(blk.us, &blk.upd[i])
		return &blk.vals[i]
	}
	blk.us = blk.usBuf[:0]
	leaf("prefix").Value = &gpb.TypedValue_StringVal{StringVal: ps}
	if g := groupOf(r); g != 0 {
		leaf("next-hop-group").Value = &gpb.TypedValue_UintVal{UintVal: g}
	}
	if o := a.origin(r); o != "" {
		leaf("origin-protocol").Value = &gpb.TypedValue_StringVal{StringVal: o}
	}
	if r.Offload != 0 || a.hardware.Load() {
		// A block of their own: a server's entries (no flags) do not
		// carry the space.
		hw := &hwBlock{}
		for i, f := range [3]struct {
			name string
			bit  fib.Offload
		}{{"offloaded", fib.Offloaded}, {"trap", fib.Trapped}, {"offload-failed", fib.OffloadFailed}} {
			hw.paths[i].Elem = leafElems[f.name]
			hw.vals[i].Value = &gpb.TypedValue_BoolVal{BoolVal: r.Offload&f.bit != 0}
			hw.upd[i] = gpb.Update{Path: &hw.paths[i], Val: &hw.vals[i]}
			blk.us = append(blk.us, &hw.upd[i])
		}
	}
	blk.n = gpb.Notification{Timestamp: ts, Prefix: &blk.prefix, Update: blk.us}
	return &blk.n
}

// entryBlock holds the messages of one AFT entry's notification.
type entryBlock struct {
	n      gpb.Notification
	prefix gpb.Path
	entry  gpb.PathElem
	elems  [6]*gpb.PathElem
	usBuf  [6]*gpb.Update // room for the hardware leaves' too
	us     []*gpb.Update
	upd    [3]gpb.Update
	paths  [3]gpb.Path
	vals   [3]gpb.TypedValue
}

// hwBlock holds an AFT entry's hardware leaves' messages.
type hwBlock struct {
	upd   [3]gpb.Update
	paths [3]gpb.Path
	vals  [3]gpb.TypedValue
}

// groupNotification is a next-hop group's leaves: its id and its
// members with their weights.
func (a *AFT) groupNotification(ts int64, g fib.AFTGroup) *gpb.Notification {
	id := uintVal(g.ID)
	us := make([]*gpb.Update, 0, 3+2*len(g.Members))
	us = append(us, leafUpdate(id, "state", "id"))
	if g.Offload != 0 || a.hardware.Load() {
		us = append(us, leafUpdate(boolVal(g.Offload&fib.Offloaded != 0), "state", "hardware", "offloaded"),
			leafUpdate(boolVal(g.Offload&fib.Trapped != 0), "state", "hardware", "trap"))
	}
	for _, m := range g.Members {
		ix := strconv.FormatUint(m.NextHop, 10)
		nh := func(leaf ...string) *gpb.Path {
			p := &gpb.Path{Elem: []*gpb.PathElem{elem("next-hops"), elem("next-hop", "index", ix)}}
			for _, l := range leaf {
				p.Elem = append(p.Elem, elem(l))
			}
			return p
		}
		us = append(us,
			&gpb.Update{Path: nh("state", "index"), Val: uintVal(m.NextHop)},
			&gpb.Update{Path: nh("state", "weight"), Val: uintVal(uint64(m.Weight))})
	}
	return &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{Elem: groupElems(g.ID)}, Update: us}
}

func groupElems(id uint64) []*gpb.PathElem {
	return append(aftElems(), elem("next-hop-groups"), elem("next-hop-group", "id", strconv.FormatUint(id, 10)))
}

func nextHopElems(id uint64) []*gpb.PathElem {
	return append(aftElems(), elem("next-hops"), elem("next-hop", "index", strconv.FormatUint(id, 10)))
}

// nextHopNotification is a next hop's leaves: its gateway and interface.
func (a *AFT) nextHopNotification(ts int64, nh fib.AFTNextHop) *gpb.Notification {
	ix := uintVal(nh.ID)
	us := []*gpb.Update{leafUpdate(ix, "state", "index")}
	if nh.Gateway.IsValid() {
		us = append(us, leafUpdate(str(nh.Gateway.String()), "state", "ip-address"))
	}
	if name := a.ifname(nh.Ifindex); name != "" {
		us = append(us, leafUpdate(str(name), "interface-ref", "state", "interface"))
	}
	return &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{Elem: nextHopElems(nh.ID)}, Update: us}
}

func leafUpdate(v *gpb.TypedValue, names ...string) *gpb.Update {
	p := &gpb.Path{Elem: make([]*gpb.PathElem, len(names))}
	for i, n := range names {
		p.Elem[i] = &gpb.PathElem{Name: n}
	}
	return &gpb.Update{Path: p, Val: v}
}

func str(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func boolVal(b bool) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: b}}
}

func uintVal(u uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: u}}
}

// Routes publishes the AFT entries of the routes the route feed reported
// changed (fib.Table.DrainUpdates): each prefix as the view has it now —
// the route the kernel forwards with, which after a withdrawal may be
// another of switchd's at a higher metric — or the entry's deletion.
func (a *AFT) Routes(us []fib.RouteUpdate) error {
	if len(us) == 0 {
		return nil
	}
	var errs joinErrs
	type found struct {
		r  fib.AFTRoute
		ok bool
	}
	now := make(map[netip.Prefix]found, len(us))
	devsChanged := false
	for _, u := range us {
		if u.Offload != 0 && !a.hardware.Load() {
			// A driver flags routes: from now on every entry says
			// whether it is in hardware, so a flag that clears is
			// published as false, not left behind.
			a.hardware.Store(true)
		}
		p := u.Route.Key.Dst
		if _, ok := now[p]; ok {
			continue
		}
		r, ok := a.routes.Lookup(p)
		now[p] = found{r, ok}
		devsChanged = a.setDev(p, devIfindex(r)) || devsChanged
	}
	if devsChanged {
		// An interface's group and next hop before the routes naming it.
		errs.add(a.Groups())
	}
	ts := time.Now().UnixNano()
	del := &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{}}
	for _, u := range us {
		p := u.Route.Key.Dst
		f, ok := now[p]
		if !ok {
			continue // sent already
		}
		delete(now, p)
		if f.ok {
			errs.add(a.pub.Update(a.routeNotification(ts, f.r)))
			continue
		}
		del.Delete = append(del.Delete, &gpb.Path{Elem: entryElems(p)})
	}
	if len(del.Delete) > 0 {
		errs.add(a.pub.Update(del))
	}
	return errs.err()
}

// GroupCount is the number of the kernel's nexthop groups last
// published (0 for a nil AFT): not the AFT's own of interfaces.
func (a *AFT) GroupCount() int {
	if a == nil {
		return 0
	}
	n := 0
	for id := range a.groupsSeen {
		if id < ifGroupBase {
			n++
		}
	}
	return n
}

// Groups publishes the next-hop groups and next hops that changed since
// the last call (the group feed, fib.Kernel.DrainGroups, says when):
// the view is few entries, so it is compared whole with what was
// published.
func (a *AFT) Groups() error {
	gs, nhs := a.snapshot()
	if slices.ContainsFunc(gs, func(g fib.AFTGroup) bool { return g.Offload != 0 }) {
		a.hardware.Store(true) // as for routes: flags from now on
	}
	// Hardware leaves just turned on (here or by a route's flag): every
	// group is rendered again with them.
	hwNew := a.hardware.Load() && !a.groupsHW
	a.groupsHW = a.hardware.Load()
	ts := time.Now().UnixNano()
	var errs joinErrs
	del := &gpb.Notification{Timestamp: ts, Prefix: &gpb.Path{}}
	// Next hops before the groups that name them; deletions of groups
	// before those of their next hops.
	nhNow := make(map[uint64]fib.AFTNextHop, len(nhs))
	for _, nh := range nhs {
		nhNow[nh.ID] = nh
		if old, ok := a.nhsSeen[nh.ID]; !ok || old != nh {
			errs.add(a.pub.Update(a.nextHopNotification(ts, nh)))
		}
	}
	gNow := make(map[uint64]fib.AFTGroup, len(gs))
	for _, g := range gs {
		gNow[g.ID] = g
		old, ok := a.groupsSeen[g.ID]
		if ok && slices.Equal(old.Members, g.Members) && old.Offload == g.Offload && !hwNew {
			continue
		}
		if ok {
			// Members gone from a group are deleted; the rest rewritten.
			for _, m := range old.Members {
				if !slices.ContainsFunc(g.Members, func(x fib.AFTMember) bool { return x.NextHop == m.NextHop }) {
					p := &gpb.Path{Elem: append(groupElems(g.ID), elem("next-hops"),
						elem("next-hop", "index", strconv.FormatUint(m.NextHop, 10)))}
					del.Delete = append(del.Delete, p)
				}
			}
		}
		errs.add(a.pub.Update(a.groupNotification(ts, g)))
	}
	for id := range a.groupsSeen {
		if _, ok := gNow[id]; !ok {
			del.Delete = append(del.Delete, &gpb.Path{Elem: groupElems(id)})
		}
	}
	for id := range a.nhsSeen {
		if _, ok := nhNow[id]; !ok {
			del.Delete = append(del.Delete, &gpb.Path{Elem: nextHopElems(id)})
		}
	}
	if len(del.Delete) > 0 {
		errs.add(a.pub.Update(del))
	}
	a.groupsSeen, a.nhsSeen = gNow, nhNow
	return errs.err()
}

// Ifnames names interfaces by index for next hops' interface-ref, from
// the kernel of the calling process's namespace; names are cached and
// read again on a miss (a new interface) — next hops are few.
func Ifnames() func(int) string {
	var mu sync.Mutex
	names := map[int]string{}
	return func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		if n, ok := names[i]; ok {
			return n
		}
		ifs, err := net.Interfaces()
		if err != nil {
			return ""
		}
		clear(names)
		for _, f := range ifs {
			names[f.Index] = f.Name
		}
		return names[i]
	}
}

package fib

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// switchd's nexthop ids: 77 (Protocol) in the top byte. Ownership is the
// nexthop protocol, as for routes; the range only keeps switchd's ids out
// of the way of ids others pick by hand (small numbers).
const (
	nhIDFirst = 0x4D000000
	nhIDLast  = 0x4DFFFFFF
)

const nhmsgLen = 8

// Resilient nexthop groups (kernel 5.13), from the uapi linux/nexthop.h;
// x/sys/unix lacks them.
const (
	nhaFDB      = 11 // NHA_FDB: flag, a nexthop for the bridge FDB (needs no device)
	nhaResGroup = 12 // NHA_RES_GROUP: nested, the resilient group's parameters

	nexthopGrpTypeRes = 1 // NEXTHOP_GRP_TYPE_RES, for NHA_GROUP_TYPE (u16)

	nhaResGroupBuckets   = 1 // NHA_RES_GROUP_BUCKETS: u16
	nhaResGroupIdleTimer = 2 // NHA_RES_GROUP_IDLE_TIMER: u32, clock_t (USER_HZ)
)

// userHZ is the unit of the kernel's clock_t in netlink (USER_HZ).
const userHZ = 100

// resCfg is the kind of a nexthop group: resilient with these buckets and
// idle timer (clock_t), or an ordinary hash-threshold group (zero).
type resCfg struct {
	buckets uint16
	idle    uint32
}

func (r resCfg) on() bool { return r.buckets != 0 }

// resConfig converts WithResilientGroups' arguments.
func resConfig(buckets uint16, idle time.Duration) resCfg {
	return resCfg{buckets: buckets, idle: uint32(idle / (time.Second / userHZ))}
}

// nhKey identifies a nexthop object: gateway and interface (always
// resolved: the kernel wants NHA_OIF), and the family of the object.
type nhKey struct {
	fam     uint8
	gw      netip.Addr
	ifindex int
}

type nhObject struct {
	id  uint32
	key nhKey
}

type grpEntry struct {
	id     uint32
	weight int
}

// nhGroup is one of switchd's nexthop groups. Routes with the same set of
// next hops share one; set is the key of its members (setKey).
type nhGroup struct {
	id      uint32
	set     string
	members []NextHop // normalized; shared read-only with the routes using it
	res     resCfg    // resilient (buckets != 0) or ordinary
	offload Offload   // hardware state (nh_flags), as last reported
}

// groupKey is the key of bySet: the member set and the group kind, so a
// route finds a group of the kind it should use. A resilient kind adds 7
// bytes, which no set key's length (1 + 22n) can be confused with.
func groupKey(set string, res resCfg) string {
	if !res.on() {
		return set
	}
	b := append([]byte(set), 'R')
	b = binary.NativeEndian.AppendUint16(b, res.buckets)
	b = binary.NativeEndian.AppendUint32(b, res.idle)
	return string(b)
}

func (g *nhGroup) key() string { return groupKey(g.set, g.res) }

// nhManager owns switchd's nexthop objects and groups in one namespace.
// Groups are global kernel objects, not per routing table, so all Tables
// of a namespace share one manager (its Kernel's): it counts the routes of
// every table that use each group (usage, from a dump of all tables plus
// every write since) and deletes a group only when no route uses it — the
// kernel would delete the routes with it.
//
// Every route over gateways uses a group, even a single-path one: then a
// change of next hops shared by all users of a group is one group rewrite
// (RTM_NEWNEXTHOP replace), whichever tables the routes are in.
//
// It is the nexthop-group dataplane of its Tables. The pieces: this file
// (ids, group kinds, route writes with group moves), nhobjects.go
// (creating, rewriting and collecting objects and groups), nhdump.go
// (reading them back), nhwire.go (their encoding), nhresolve.go (gateway
// interfaces), nexthopdown.go (dropGateways), nhnotify.go
// (notifications), nhfeed.go (the group feed).
//
// Threading: safe for concurrent use by several Tables (mu).
type nhManager struct {
	protocol int
	log      *slog.Logger
	// res is the kind of the groups of 2+ members (WithResilientGroups),
	// zero for ordinary groups; resAsked what the first Table asked for
	// (res is zero if the kernel refused it).
	res, resAsked resCfg
	// routeGen is the Kernel's count of route changes switchd did not
	// make: a cached gateway lookup older than it is done again.
	routeGen *atomic.Uint64

	mu        sync.Mutex // guards the fields below
	c         *pnl.Conn
	synced    bool // a dump of nexthops and all routes has been taken
	next      uint32
	objs      map[uint32]*nhObject
	byKey     map[nhKey]*nhObject
	groups    map[uint32]*nhGroup
	bySet     map[string]*nhGroup
	taken     map[uint32]bool // ids held by others
	usage     map[uint32]int  // routes (any table, any protocol) using an id
	foreignIn map[uint32]bool // our objects that are members of foreign groups
	gws       gwCache         // gateway interfaces (nhresolve.go)
	feed      groupFeed       // groups changed since the last drain (nhfeed.go)
}

// openManager makes the manager that writes through c. It returns
// errNoNexthops if the kernel has no nexthop objects.
func openManager(c *pnl.Conn, protocol int, res resCfg, routeGen *atomic.Uint64, kick chan struct{}, log *slog.Logger) (*nhManager, error) {
	m := &nhManager{protocol: protocol, log: log, c: c, next: nhIDFirst, routeGen: routeGen}
	m.feed.kick = kick
	// The probe: a kernel without nexthop objects (before 5.3) refuses the
	// dump.
	if err := m.dumpNexthops(); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("%w: %v", errNoNexthops, err)
		}
		return nil, err
	}
	m.resAsked = res
	if res.on() {
		if err := m.probeResilient(res); err != nil {
			log.Info("fib: no resilient nexthop groups; ordinary groups", "err", err)
		} else {
			m.res = res
		}
	}
	return m, nil
}

var errNoNexthops = errors.New("kernel has no nexthop objects")

// setKey is the identity of a set of resolved, normalized next hops for a
// route family.
func setKey(fam uint8, nhs []NextHop) string {
	return string(appendSetKey(make([]byte, 0, 1+len(nhs)*22), fam, nhs))
}

func appendSetKey(b []byte, fam uint8, nhs []NextHop) []byte {
	b = append(b, fam)
	for _, nh := range nhs {
		a := nh.Gateway.As16()
		if !nh.Gateway.IsValid() {
			a = [16]byte{}
		}
		v := byte(0)
		if nh.Gateway.Is4() {
			v = 4
		} else if nh.Gateway.IsValid() {
			v = 6
		}
		b = append(b, v)
		b = append(b, a[:]...)
		b = binary.NativeEndian.AppendUint32(b, uint32(nh.Ifindex))
		b = append(b, byte(nh.Weight-1))
	}
	return b
}

// allocID returns an id no one uses.
func (m *nhManager) allocID() (uint32, error) {
	for range nhIDLast - nhIDFirst {
		id := m.next
		m.next++
		if m.next > nhIDLast {
			m.next = nhIDFirst
		}
		if m.objs[id] == nil && m.groups[id] == nil && !m.taken[id] {
			return id, nil
		}
	}
	return 0, errors.New("no free nexthop id")
}

// target is what an add or replace needs: the resolved next-hop set.
type target struct {
	fam     uint8
	set     string
	members []NextHop
	err     error
}

// write is the dataplane's write with nexthop groups: it resolves next hops,
// rewrites a group in place when all of its users move to the same new set,
// creates the nexthop objects and groups the other routes need, writes the
// routes, and deletes groups and objects no route uses any more.
func (m *nhManager) write(ctx context.Context, ops []op, protocol int, ctl batchControl) ([]error, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := make([]error, len(ops))
	nhWrites := 0
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = notSent{err}
		}
		return errs, 0
	}
	res := resolver{m: m}
	// Targets, shared by routes whose desired next hops are equal.
	targets := make(map[string]*target)
	tgt := make([]*target, len(ops))
	var scratch []byte
	for i, o := range ops {
		// A route straight out of one device (a workload's /32) stays
		// inline: nothing shares it, and a nexthop object would refuse a
		// device without carrier, such as a VM's tap before the VM runs.
		if o.kind == opDelete || o.route.Type != Unicast || deviceOnly(o.route) {
			continue
		}
		fam := family(o.route.Key.Dst.Addr())
		scratch = append(scratch[:0], setKey(fam, o.route.NextHops)...)
		t := targets[string(scratch)]
		if t == nil {
			t = m.resolveTarget(&res, fam, o.route.NextHops)
			targets[string(scratch)] = t
		}
		if t.err != nil {
			errs[i] = unsendable{t.err}
			continue
		}
		tgt[i] = t
	}

	// In-place rewrites: every user of group g is in ops, moving to one set.
	type move struct {
		t  *target
		n  int
		ok bool
	}
	moves := make(map[uint32]*move)
	for i, o := range ops {
		g := o.oldNHG
		if g == 0 || m.groups[g] == nil {
			continue
		}
		mv := moves[g]
		if mv == nil {
			mv = &move{t: tgt[i], ok: true}
			moves[g] = mv
		}
		mv.n++
		if o.kind != opReplace || tgt[i] == nil || tgt[i] != mv.t {
			mv.ok = false
		}
	}
	rewrite := make(map[uint32]*target)
	for g, mv := range moves {
		if mv.ok && mv.n == m.usage[g] && m.groups[g].set != mv.t.set && m.fits(m.groups[g], len(mv.t.members)) {
			rewrite[g] = mv.t
		}
	}
	groupOf := make([]uint32, len(ops))
	newGroups := make(map[*target]uint32)
	for i, o := range ops {
		t := tgt[i]
		if t == nil {
			continue
		}
		if rt := rewrite[o.oldNHG]; rt != nil && o.oldNHG != 0 {
			groupOf[i] = o.oldNHG
			ops[i].inPlace = true
			continue
		}
		if g := m.groups[o.oldNHG]; g != nil && o.kind == opReplace && g.set == t.set && m.fits(g, len(t.members)) {
			// Already rewritten to this set (moveGroups): bookkeeping only.
			groupOf[i] = o.oldNHG
			ops[i].inPlace = true
			continue
		}
		if g := m.findGroup(t); g != nil && rewrite[g.id] == nil {
			groupOf[i] = g.id
			continue
		}
		id, ok := newGroups[t]
		if !ok {
			var err error
			if id, err = m.allocID(); err != nil {
				errs[i] = unsendable{err}
				continue
			}
			m.taken[id] = true // reserved until created
			newGroups[t] = id
		}
		groupOf[i] = id
	}

	var targetsUsed []*target
	for _, t := range rewrite {
		targetsUsed = append(targetsUsed, t)
	}
	for t := range newGroups {
		targetsUsed = append(targetsUsed, t)
	}
	objErr, n := m.ensureObjects(targetsUsed)
	nhWrites += n
	var gws []groupWrite
	for g, t := range rewrite {
		gws = append(gws, groupWrite{id: g, t: t, replace: true})
	}
	for t, id := range newGroups {
		gws = append(gws, groupWrite{id: id, t: t})
	}
	grpErr, n := m.writeGroups(gws, objErr)
	nhWrites += n

	// Routes.
	for i := range ops {
		if errs[i] != nil || tgt[i] == nil {
			continue
		}
		if e := grpErr[groupOf[i]]; e != nil {
			errs[i] = unsendable{e}
			ops[i].inPlace = false
		} else if groupOf[i] == 0 {
			errs[i] = unsendable{errors.New("no nexthop group")}
		}
	}
	writeRoutes(ctx, m.c, ops, errs, groupOf, protocol, ctl)

	// Usage: routes moved from their old group to the new one.
	for i, o := range ops {
		if errs[i] != nil || o.inPlace {
			continue
		}
		if o.oldNHG != 0 {
			m.usage[o.oldNHG]--
		}
		if o.kind != opDelete && groupOf[i] != 0 {
			m.usage[groupOf[i]]++
			m.landed(&ops[i], groupOf[i], tgt[i])
		}
	}
	for i, o := range ops {
		if o.inPlace && errs[i] == nil {
			m.landed(&ops[i], groupOf[i], tgt[i])
		}
	}
	nhWrites += m.gcLocked()
	return errs, nhWrites
}

// landed records in o what the kernel now holds for its route: group g,
// whose members are t's (interfaces resolved), as a dump would report
// it, so the kernel view does not change at the next resync.
func (m *nhManager) landed(o *op, g uint32, t *target) {
	o.route.nhg = g
	if t != nil {
		o.route.NextHops = t.members
	}
}

// groupMove asks for group g to take the next hops nhs (of routes of
// family fam) because users of g's routes in one table want them.
type groupMove struct {
	g     uint32
	fam   uint8
	nhs   []NextHop
	users int // routes of the table that move
}

// moveGroups rewrites in place each group whose every user (in all
// tables) moves to the same new set: the kernel then stops using a
// withdrawn next hop at once, before any per-route work. It is O(groups).
// Moves it cannot make are left to the route writes, which find their own
// way. It returns the groups rewritten and the nexthop writes sent.
func (m *nhManager) moveGroups(ctx context.Context, moves []groupMove) (done []uint32, nhWrites int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil || !m.synced {
		return nil, 0
	}
	res := resolver{m: m}
	var gws []groupWrite
	var targets []*target
	for _, mv := range moves {
		g := m.groups[mv.g]
		if g == nil || m.usage[mv.g] != mv.users {
			continue
		}
		t := m.resolveTarget(&res, mv.fam, mv.nhs)
		if t.err != nil || t.set == g.set || !m.fits(g, len(t.members)) {
			continue
		}
		gws = append(gws, groupWrite{id: mv.g, t: t, replace: true})
		targets = append(targets, t)
	}
	if len(gws) == 0 {
		return nil, 0
	}
	objErr, n := m.ensureObjects(targets)
	nhWrites += n
	grpErr, n := m.writeGroups(gws, objErr)
	nhWrites += n
	for _, g := range gws {
		if grpErr[g.id] == nil {
			done = append(done, g.id)
		}
	}
	return done, nhWrites
}

// want is the kind of a new group of n members: resilient only for ECMP
// (a single next hop has no flows to keep apart).
func (m *nhManager) want(n int) resCfg {
	if n >= 2 {
		return m.res
	}
	return resCfg{}
}

// fits reports whether group g may serve (and be rewritten in place to) a
// set of n members. A resilient group of the configured kind serves any
// size: a withdrawn path shrinks it in place and the other members keep
// their buckets, which is the point. An ordinary group serves single
// paths while the option is on; with the option off only ordinary groups
// fit, so switching the option either way moves routes to new groups.
func (m *nhManager) fits(g *nhGroup, n int) bool {
	return g.res == m.res || (!g.res.on() && n < 2)
}

// findGroup returns an existing group of the target's set that fits it.
func (m *nhManager) findGroup(t *target) *nhGroup {
	if g := m.bySet[groupKey(t.set, m.want(len(t.members)))]; g != nil {
		return g
	}
	if g := m.bySet[groupKey(t.set, m.res)]; g != nil && m.fits(g, len(t.members)) {
		return g
	}
	return nil
}

// deviceOnly reports a route with one next hop that is only an interface.
func deviceOnly(r Route) bool {
	return len(r.NextHops) == 1 && !r.NextHops[0].Gateway.IsValid() && r.NextHops[0].Ifindex != 0
}

package fib

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel is switchd's access to the routing state of one network
// namespace: it owns what the Tables and Monitors of that namespace share.
//
//   - The nexthop manager (per route protocol): nexthop objects and groups
//     are namespace-wide kernel objects, used by the routes of every
//     table, so one manager allocates their ids, counts their users and
//     deletes them when none is left.
//   - The writer set: the port ids of the sockets its Tables write
//     through. The kernel stamps each notification with the port id of
//     the socket whose request caused it, so a Monitor drops the echoes of
//     switchd's own writes by that stamp (in the kernel, with a socket
//     filter), before decoding them: a bulk install echoes every route.
//   - The gateway cache's generation: a Monitor counts the route changes
//     switchd did not make, which may change how a gateway resolves.
//
// Make one Kernel per namespace (Open), its Tables and Monitors from it
// (NewTable, NewMonitor), and Close it after them. Two Kernels in one
// namespace would not see each other's writers or groups.
//
// Threading: safe for concurrent use; each Table it makes is not.
type Kernel struct {
	// ns is the namespace (an NS of the Kernel's own); nil: that of the
	// thread that makes a socket (Open with nil).
	ns   *pnl.NS
	opts []Opt // given to Open, applied to every Table and Monitor first

	// routeGen counts the route and nexthop notifications not caused by
	// switchd (Monitor.take); cached gateway lookups older than it are
	// looked up again (nhManager.gateway).
	routeGen atomic.Uint64
	// groupsKick is the kick of the nexthop-group feed (nhfeed.go).
	groupsKick chan struct{}
	// writers is the writer set (port ids). It is replaced, never
	// changed, so a Monitor's receiver reads it without a lock.
	writers atomic.Pointer[map[uint32]bool]

	mu       sync.Mutex // guards the fields below; taken before wmu
	closed   bool
	managers map[int]*nhManager // by route protocol
	noNH     error              // why the kernel has no nexthop objects (nil: unknown or it has)
	handle   *netlink.Handle    // for WithSerialWriter, made on first use

	wmu      sync.Mutex        // serializes replacements of writers; guards monitors
	monitors map[*Monitor]bool // refiltered when the writer set changes
}

// Open returns the Kernel of namespace ns (nil for the calling thread's).
// It keeps an NS of its own; the caller keeps ns. The options
// apply to every Table and Monitor made from it, before their own;
// WithProtocol, WithResilientGroups, WithoutNexthopObjects and
// WithSerialWriter belong here (the nexthop groups of a namespace are
// shared, so the first Table's choice holds for all).
func Open(ns *pnl.NS, opts ...Opt) (*Kernel, error) {
	k := &Kernel{opts: opts, managers: make(map[int]*nhManager), monitors: make(map[*Monitor]bool), groupsKick: make(chan struct{}, 1)}
	if ns != nil {
		own, err := pnl.NSFromFd(ns.Fd())
		if err != nil {
			return nil, fmt.Errorf("open fib: %w", err)
		}
		k.ns = own
	}
	return k, nil
}

// Close releases the Kernel's sockets. Close its Tables and Monitors
// first. Routes and nexthops stay in the kernel: a restarted switchd
// adopts them.
func (k *Kernel) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.closed = true
	for _, m := range k.managers {
		m.mu.Lock()
		k.closeWriter(m.c)
		m.mu.Unlock()
	}
	clear(k.managers)
	if k.handle != nil {
		k.handle.Close()
		k.handle = nil
	}
	k.ns.Close()
	k.ns = nil
}

// dial opens a rtnetlink socket in the Kernel's namespace.
func (k *Kernel) dial(opts ...pnl.Option) (*pnl.Conn, error) { return dialConn(k.ns, opts...) }

// dialWriter opens a socket for route writes and adds its port id to the
// writer set; closeWriter takes it out again and closes it.
func (k *Kernel) dialWriter() (*pnl.Conn, error) {
	c, err := k.dial()
	if err != nil {
		return nil, err
	}
	k.replaceWriters(func(w map[uint32]bool) { w[c.PortID()] = true })
	return c, nil
}

func (k *Kernel) closeWriter(c *pnl.Conn) {
	k.replaceWriters(func(w map[uint32]bool) { delete(w, c.PortID()) })
	c.Close()
}

// replaceWriters installs a changed copy of the writer set and refilters
// the monitors.
func (k *Kernel) replaceWriters(change func(map[uint32]bool)) {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	next := make(map[uint32]bool)
	if cur := k.writers.Load(); cur != nil {
		maps.Copy(next, *cur)
	}
	change(next)
	k.writers.Store(&next)
	for m := range k.monitors {
		m.attachFilter()
	}
}

// writerPorts lists the port ids of switchd's writers, sorted.
func (k *Kernel) writerPorts() []uint32 {
	var out []uint32
	if set := k.writers.Load(); set != nil {
		out = slices.Sorted(maps.Keys(*set))
	}
	return out
}

// ownWrite reports whether a notification stamped with port id pid was
// caused by one of switchd's writers.
func (k *Kernel) ownWrite(pid uint32) bool {
	if pid == 0 {
		return false // the kernel's own change (link down, ...)
	}
	set := k.writers.Load()
	return set != nil && (*set)[pid]
}

// NewTable returns a Table for kernel table table (MainTable for 0) in the
// Kernel's namespace. The first Apply dumps the table before it writes
// anything, so a restarted switchd adopts its routes.
func (k *Kernel) NewTable(table int, opts ...Opt) *Table {
	t := newTable(table, append(slices.Clip(k.opts), opts...)...)
	if t.dp == nil {
		k.initDataplane(t)
	} else {
		t.mode = "test"
	}
	t.checkResolution()
	return t
}

// Kernel writer modes (Mode).
const (
	ModeNexthopGroups = "nexthop-groups" // routes use shared nexthop groups
	ModeMultipath     = "multipath"      // next hops inline, pipelined
	ModeSerial        = "serial"         // next hops inline, one request at a time
)

// initDataplane gives t the best writer the kernel supports: shared
// nexthop groups, else pipelined inline next hops, else (or with
// WithSerialWriter) one request at a time.
func (k *Kernel) initDataplane(t *Table) {
	t.mode = ModeSerial
	if !t.serial {
		if !t.noNexthops {
			m, err := k.manager(t)
			if err == nil {
				t.dp, t.mode = m, ModeNexthopGroups
				return
			}
			t.log.Info("fib: no nexthop objects; next hops inline in routes", "err", err)
		}
		c, err := k.dialWriter()
		if err == nil {
			t.dp, t.mode = multipathDataplane{c: c}, ModeMultipath
			t.closers = append(t.closers, func() { k.closeWriter(c) })
			return
		}
		t.log.Warn("fib: pipelined writer unavailable; serial writer", "err", err)
	}
	h, err := k.serialHandle()
	if err != nil {
		t.log.Error("fib: no netlink handle for the serial writer; every write fails", "err", err)
		h = &netlink.Handle{} // fails on each request with a useful error
	}
	t.dp = netlinkDataplane{h: h}
}

// serialHandle returns the vishvananda handle of the namespace.
func (k *Kernel) serialHandle() (*netlink.Handle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.handle != nil {
		return k.handle, nil
	}
	var h *netlink.Handle
	var err error
	if fd := k.ns.Fd(); fd >= 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	k.handle = h
	return h, nil
}

// manager returns the nexthop manager of t's protocol, made on first use
// with t's resilient-group options.
func (k *Kernel) manager(t *Table) (*nhManager, error) {
	res := t.resilient()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errors.New("fib kernel closed")
	}
	if m := k.managers[t.protocol]; m != nil {
		if m.resAsked != res {
			// Groups are shared by the namespace's Tables: one kind for all.
			t.log.Warn("fib: nexthop groups of this namespace already set up with other resilient-group options; keeping them",
				"buckets", m.resAsked.buckets, "idle_clock_t", m.resAsked.idle)
		}
		return m, nil
	}
	if k.noNH != nil {
		return nil, k.noNH
	}
	c, err := k.dialWriter()
	if err != nil {
		return nil, err
	}
	m, err := openManager(c, t.protocol, res, &k.routeGen, k.groupsKick, t.log)
	if err != nil {
		k.closeWriter(c)
		if errors.Is(err, errNoNexthops) {
			k.noNH = err
		}
		return nil, err
	}
	k.managers[t.protocol] = m
	return m, nil
}

// resilient returns the resilient-group kind t asks for (zero: ordinary
// groups), checking the arguments.
func (t *Table) resilient() resCfg {
	if !t.resAsk {
		return resCfg{}
	}
	if t.resBuckets == 0 || t.resIdle < 0 || t.resIdle/(time.Second/userHZ) > math.MaxUint32 {
		t.log.Warn("fib: WithResilientGroups needs at least one bucket and an idle timer from 0 to 497 days; ordinary groups",
			"buckets", t.resBuckets, "idle_timer", t.resIdle)
		return resCfg{}
	}
	return resConfig(t.resBuckets, t.resIdle)
}

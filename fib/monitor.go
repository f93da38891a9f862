package fib

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// RouteEvent is a kernel notification about one of a Table's routes.
type RouteEvent struct {
	Deleted bool
	Route   Route

	// nexthop is set for an event about a nexthop object or group of
	// switchd's (then Route is empty): OnRouteEvent resyncs if it tells
	// something the table's view does not know. nh is what it says.
	nexthop uint32
	nh      *nhNotice
	// foreign marks a route of another owner (WithNextHopResolution):
	// OnRouteEvent takes it into the next-hop resolution state.
	foreign bool
}

// monitorRecvBuffer is the Monitor socket's receive buffer (the kernel
// doubles it). A bulk install or a group rewrite makes the kernel notify
// every route; the receiver drops switchd's own echoes as fast as it can,
// and the buffer absorbs the bursts it cannot keep up with. Only a real
// overrun (ENOBUFS) costs a resync.
const monitorRecvBuffer = 128 << 20

// Monitor listens to the kernel's route notifications in a namespace and
// keeps those about one table's routes (switchd's protocol, that table) for
// the fib loop, which feeds them to Table.OnRouteEvent. That is how a route
// deleted or changed behind switchd's back is repaired without a full dump.
//
// Events are coalesced per route (and per nexthop id): only the latest
// counts, so what waits is bounded by the number of routes, not of events.
// Notifications caused by switchd's own writes (the kernel stamps them with
// the writer socket's port id) are dropped, and erase an earlier event for
// the same route, which they supersede.
//
// Create the Monitor before the Table's first Apply, so nothing that
// happens between the dump and the subscription is missed. Notifications can
// be lost (socket overrun) and IPv4 routes vanish with their link without
// one, so a Monitor complements the periodic resync, it does not replace it:
// when it loses events it says so through Drain's resync result.
//
// The subscription runs on its own goroutine; Kick and Drain are safe to
// call from the fib loop.
type Monitor struct {
	k        *Kernel
	table    int
	protocol int
	log      *slog.Logger
	kick     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}

	// c is the socket of the current subscription (nil: none), for
	// attachFilter, which other goroutines call (Kernel.replaceWriters).
	cMu sync.Mutex
	c   *pnl.Conn

	mu       sync.Mutex // guards the fields below
	routes   map[RouteKey]RouteEvent
	nexthops map[uint32]RouteEvent
	// others holds other owners' route events (WithNextHopResolution;
	// nil otherwise), apart from ours: a key may change owner. Device
	// routes are told apart by interface (fe80::/64 is on every link).
	others   map[otherKey]RouteEvent
	resync   bool
	echoes   uint64        // own notifications dropped in user space (tests)
	received atomic.Uint64 // messages that reached user space (tests)
}

// monitorKernelFilter makes Monitors drop the echoes of switchd's own
// writes in the kernel (a socket filter); tests switch it off to exercise
// the user-space check, which stays as the fallback.
var monitorKernelFilter = true

// attachFilter (re)attaches the socket filter that drops the echoes of
// switchd's writers in this namespace, so that a bulk install does not
// wake the monitor for every route. A failure only costs CPU: the
// user-space check drops what the filter lets through.
// Beyond pnl.MaxFilterPorts writers the user-space check does the rest.
func (m *Monitor) attachFilter() {
	m.cMu.Lock()
	defer m.cMu.Unlock()
	if m.c == nil || !monitorKernelFilter {
		return
	}
	var prog []bpf.RawInstruction // none: no filter
	if ports := m.k.writerPorts(); len(ports) > 0 {
		prog = pnl.DropPortsFilter(ports)
	}
	if err := m.c.SetFilter(prog); err != nil {
		m.log.Warn("fib route monitor: kernel filter for own echoes not attached", "err", err)
	}
}

// setConn records the subscription's socket (nil: none) and filters it.
func (m *Monitor) setConn(c *pnl.Conn) {
	m.cMu.Lock()
	m.c = c
	m.cMu.Unlock()
	if c != nil {
		m.attachFilter()
	}
}

// NewMonitor subscribes to IPv4 and IPv6 route notifications and nexthop
// notifications in the Kernel's namespace for routes of table and
// nexthops marked with switchd's protocol (or the one given by
// WithProtocol). It drops the echoes of the Kernel's Tables' writes.
func (k *Kernel) NewMonitor(table int, opts ...Opt) (*Monitor, error) {
	if table == 0 {
		table = MainTable
	}
	cfg := Table{protocol: Protocol, log: slog.New(slog.DiscardHandler)}
	for _, o := range append(slices.Clip(k.opts), opts...) {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{
		k:        k,
		table:    table,
		protocol: cfg.protocol,
		log:      cfg.log,
		kick:     make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
		routes:   make(map[RouteKey]RouteEvent),
		nexthops: make(map[uint32]RouteEvent),
	}
	if cfg.rs != nil {
		m.others = make(map[otherKey]RouteEvent)
	}
	// Registered before subscribing: a writer that registers meanwhile
	// refilters this monitor, or is seen by its first filter.
	k.wmu.Lock()
	k.monitors[m] = true
	k.wmu.Unlock()
	c, err := m.subscribe()
	if err != nil {
		m.unregister()
		cancel()
		return nil, err
	}
	m.setConn(c)
	go m.run(ctx, c)
	return m, nil
}

func (m *Monitor) unregister() {
	m.k.wmu.Lock()
	delete(m.k.monitors, m)
	m.k.wmu.Unlock()
}

// Kick receives a value when events (or a resync request) are waiting.
func (m *Monitor) Kick() <-chan struct{} { return m.kick }

// Drain returns the waiting events, the latest for each route and nexthop
// (in no particular order: each stands alone), and whether some were lost
// so that the table should resync.
func (m *Monitor) Drain() (events []RouteEvent, resync bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	events = make([]RouteEvent, 0, len(m.routes)+len(m.nexthops)+len(m.others))
	for _, ev := range m.others {
		events = append(events, ev)
	}
	clear(m.others)
	for _, ev := range m.routes {
		events = append(events, ev)
	}
	for _, ev := range m.nexthops {
		events = append(events, ev)
	}
	resync = m.resync
	if len(m.routes) > 0 {
		m.routes = make(map[RouteKey]RouteEvent) // let a large map go
	}
	clear(m.nexthops)
	m.resync = false
	return events, resync
}

// Close ends the subscription and waits for its goroutine. The receiver
// blocks until a notification comes (an idle node's monitor must not wake
// for nothing: hundreds share two cores in the simulator), so Close
// closes the current socket to end the wait; run sees ctx done.
func (m *Monitor) Close() {
	m.cancel()
	m.cMu.Lock()
	if m.c != nil {
		m.c.Close()
	}
	m.cMu.Unlock()
	<-m.done
	m.unregister()
}

func (m *Monitor) subscribe() (*pnl.Conn, error) {
	c, err := m.k.dial(
		pnl.WithGroups(unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_NEXTHOP),
		pnl.WithSocketBuffers(0, monitorRecvBuffer),
		pnl.WithReceiveTimeout(0))
	if err != nil {
		return nil, fmt.Errorf("subscribe to route changes of table %d: %w", m.table, err)
	}
	return c, nil
}

func (m *Monitor) run(ctx context.Context, c *pnl.Conn) {
	defer close(m.done)
	defer func() {
		m.setConn(nil)
		if c != nil {
			c.Close()
		}
	}()
	var d routeDecoder
	for ctx.Err() == nil {
		err := c.Receive(func(msg netlink.Message) bool {
			m.take(&d, msg)
			return true
		})
		switch {
		case ctx.Err() != nil:
			return // Close closed the socket
		case err == nil:
			if len(d.nhCache) > 4096 {
				d = routeDecoder{}
			}
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped notifications (socket overrun).
			m.log.Warn("fib route monitor: notifications lost; resync", "table", m.table)
			m.lost()
		default:
			m.log.Error("fib route monitor: receive failed; resubscribing", "table", m.table, "err", err)
			m.lost()
			m.setConn(nil)
			c.Close()
			if c = m.resubscribe(ctx); c == nil {
				return
			}
			m.setConn(c)
		}
	}
}

// resubscribe subscribes again, retrying every second; nil once ctx is done.
func (m *Monitor) resubscribe(ctx context.Context) *pnl.Conn {
	for {
		c, err := m.subscribe()
		if err == nil {
			return c
		}
		m.log.Error("fib route monitor: resubscribe failed", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (m *Monitor) take(d *routeDecoder, msg netlink.Message) {
	typ, data := uint16(msg.Header.Type), msg.Data
	own := m.k.ownWrite(msg.Header.PID)
	m.received.Add(1)
	if !own {
		// Someone else changed a route or nexthop: a cached gateway
		// lookup may be stale (nhresolve.go).
		m.k.routeGen.Add(1)
	}
	if own {
		m.mu.Lock()
		empty := len(m.routes) == 0 && len(m.nexthops) == 0
		if empty {
			m.echoes++
		}
		m.mu.Unlock()
		if empty {
			return // nothing an echo could supersede: skip decoding
		}
	}
	var ev RouteEvent
	switch typ {
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(data) < rtmsgLen || int(data[5]) != m.protocol && m.others == nil {
			return
		}
		kr, ok := d.decode(data)
		if !ok || kr.route.Key.Table != m.table {
			return
		}
		ev = RouteEvent{Deleted: typ == unix.RTM_DELROUTE, Route: kr.route, foreign: kr.protocol != m.protocol}
	case unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP:
		if len(data) < nhmsgLen || int(data[2]) != m.protocol {
			return
		}
		n := &nhNotice{offload: nhOffload(nativeU32(data[4:]))}
		forAttrs(data[nhmsgLen:], func(t uint16, v []byte) {
			switch {
			case t == unix.NHA_ID && len(v) >= 4:
				ev.nexthop = nativeU32(v)
			case t == unix.NHA_GROUP:
				n.group = true
				for ; len(v) >= 8; v = v[8:] {
					n.members = append(n.members, grpEntry{id: nativeU32(v), weight: (int(v[4]) | int(v[5])<<8) + 1})
				}
			case t == unix.NHA_GATEWAY:
				n.key.gw, _ = netip.AddrFromSlice(v)
			case t == unix.NHA_OIF && len(v) >= 4:
				n.key.ifindex = int(nativeU32(v))
			}
		})
		if ev.nexthop == 0 {
			return
		}
		ev.Deleted = typ == unix.RTM_DELNEXTHOP
		ev.nh = n
	default:
		return
	}
	m.mu.Lock()
	switch {
	case own:
		m.echoes++
		if ev.nexthop != 0 {
			delete(m.nexthops, ev.nexthop)
		} else {
			delete(m.routes, ev.Route.Key)
		}
	case ev.nexthop != 0:
		m.nexthops[ev.nexthop] = ev
	case ev.foreign:
		m.others[otherKeyOf(ev.Route)] = ev
	default:
		m.routes[ev.Route.Key] = ev
	}
	m.mu.Unlock()
	if !own {
		m.signal()
	}
}

// lost records that events went missing: the table must resync.
func (m *Monitor) lost() {
	m.mu.Lock()
	m.routes, m.resync = make(map[RouteKey]RouteEvent), true
	clear(m.others)
	clear(m.nexthops)
	m.mu.Unlock()
	m.signal()
}

func (m *Monitor) signal() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// otherKey coalesces other owners' route events: per key, and per
// interface for device routes.
type otherKey struct {
	key RouteKey
	dev int
}

func otherKeyOf(r Route) otherKey {
	return otherKey{key: r.Key, dev: fRouteOf(r).dev}
}

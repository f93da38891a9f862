package fib

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteEvent is a kernel notification about one of a Table's routes.
type RouteEvent struct {
	Deleted bool
	Route   Route
}

// maxQueuedEvents bounds the events a Monitor holds for the fib loop; past
// it the events are dropped and a resync is requested instead, which is
// cheaper than replaying a flood one by one.
const maxQueuedEvents = 4096

// Monitor listens to the kernel's route notifications in a namespace and
// keeps those about one table's routes (switchd's protocol, that table) for
// the fib loop, which feeds them to Table.OnRouteEvent. That is how a route
// deleted or changed behind switchd's back is repaired without a full dump.
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
	ns       netns.NsHandle
	table    int
	protocol int
	log      *slog.Logger
	kick     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex // guards the fields below
	events []RouteEvent
	resync bool
}

// NewMonitor subscribes to IPv4 and IPv6 route notifications in the
// namespace ns (netns.None() for the calling thread's) for routes of table
// marked with switchd's protocol (or the one given by WithProtocol).
func NewMonitor(ns netns.NsHandle, table int, opts ...Opt) (*Monitor, error) {
	if table == 0 {
		table = MainTable
	}
	cfg := Table{protocol: Protocol, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{
		ns:       ns,
		table:    table,
		protocol: cfg.protocol,
		log:      cfg.log,
		kick:     make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	ch, stop, err := m.subscribe()
	if err != nil {
		cancel()
		return nil, err
	}
	go m.run(ctx, ch, stop)
	return m, nil
}

// Kick receives a value when events (or a resync request) are waiting.
func (m *Monitor) Kick() <-chan struct{} { return m.kick }

// Drain returns the waiting events in the order the kernel sent them, and
// whether some were lost so that the table should resync.
func (m *Monitor) Drain() (events []RouteEvent, resync bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	events, resync = m.events, m.resync
	m.events, m.resync = nil, false
	return events, resync
}

// Close ends the subscription and waits for its goroutine.
func (m *Monitor) Close() {
	m.cancel()
	<-m.done
}

func (m *Monitor) subscribe() (<-chan netlink.RouteUpdate, chan struct{}, error) {
	ch := make(chan netlink.RouteUpdate, 256)
	stop := make(chan struct{})
	nsh := m.ns
	err := netlink.RouteSubscribeWithOptions(ch, stop, netlink.RouteSubscribeOptions{
		Namespace: &nsh,
		// A failed receive (ENOBUFS after an overrun) ends the subscription;
		// run notices the closed channel, asks for a resync and subscribes
		// again.
		ErrorCallback: func(err error) { m.log.Warn("fib route monitor", "table", m.table, "err", err) },
	})
	if err != nil {
		close(stop)
		return nil, nil, fmt.Errorf("subscribe to route changes of table %d: %w", m.table, err)
	}
	return ch, stop, nil
}

func (m *Monitor) run(ctx context.Context, ch <-chan netlink.RouteUpdate, stop chan struct{}) {
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			close(stop)
			for range ch {
				// Unblock the receiver so it sees the closed socket and exits.
			}
			return
		case u, ok := <-ch:
			if ok {
				m.take(u)
				continue
			}
			close(stop)
			m.lost()
			if ch, stop = m.resubscribe(ctx); ch == nil {
				return
			}
		}
	}
}

// resubscribe subscribes again after the kernel ended the subscription,
// retrying every second; it returns nil channels once ctx is done.
func (m *Monitor) resubscribe(ctx context.Context) (<-chan netlink.RouteUpdate, chan struct{}) {
	for {
		ch, stop, err := m.subscribe()
		if err == nil {
			return ch, stop
		}
		m.log.Error("fib route monitor: resubscribe failed", "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(time.Second):
		}
	}
}

func (m *Monitor) take(u netlink.RouteUpdate) {
	if u.Flags&unix.RTM_F_CLONED != 0 || !owned(u.Route, m.table, m.protocol) {
		return
	}
	if u.Type != unix.RTM_NEWROUTE && u.Type != unix.RTM_DELROUTE {
		return
	}
	r, err := fromNetlink(u.Route)
	if err != nil {
		m.log.Warn("fib route monitor: undecodable route; resync", "err", err)
		m.lost()
		return
	}
	m.mu.Lock()
	if len(m.events) >= maxQueuedEvents {
		m.events, m.resync = nil, true
	} else if !m.resync {
		m.events = append(m.events, RouteEvent{Deleted: u.Type == unix.RTM_DELROUTE, Route: r})
	}
	m.mu.Unlock()
	m.signal()
}

// lost records that events went missing: the table must resync.
func (m *Monitor) lost() {
	m.mu.Lock()
	m.events, m.resync = nil, true
	m.mu.Unlock()
	m.signal()
}

func (m *Monitor) signal() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

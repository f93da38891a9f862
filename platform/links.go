package platform

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// CarrierEvent is an interface that gained or lost carrier.
type CarrierEvent struct {
	Index   int
	Name    string
	Carrier bool
	// Prefixes are the interface's connected prefixes (its addresses with
	// their lengths) as last seen. On carrier loss they are what it had
	// while up: the kernel may flush IPv6 addresses as the link goes down.
	Prefixes []netip.Prefix
}

// LinkMonitor publishes carrier changes of a namespace's interfaces: a
// kick channel plus Drain, as the other components' feeds.
//
// Carrier means admin up and lower up (IFF_UP and IFF_LOWER_UP): a link
// set down locally and a veth whose far end went down both lose it, which
// is what a directly connected BGP session cannot survive.
//
// Connected prefixes are kept from address events. A deletion while the
// interface has no carrier is ignored: it is the kernel flushing IPv6
// addresses of a link going down (keep_addr_on_down 0). The kernel sends
// those deletions before the link event that reports the carrier loss, so
// a deletion asks the kernel for the link's flags of the moment.
type LinkMonitor struct {
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	mon  *pnl.Monitor
	c    *pnl.Conn // for listing, and the link's flags at an address deletion

	mu      sync.Mutex // guards the fields below
	carrier map[int]bool
	names   map[int]string
	nets    map[int][]netip.Prefix
	events  []CarrierEvent
	err     error
}

// NewLinkMonitor subscribes to link and address changes in namespace h
// (nil for the caller's) and lists what exists. Events start with the
// first change after that.
func NewLinkMonitor(h *pnl.NS) (*LinkMonitor, error) {
	m := &LinkMonitor{
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		carrier: make(map[int]bool),
		names:   make(map[int]string),
		nets:    make(map[int][]netip.Prefix),
	}
	var err error
	// Subscribe first, then list: a change in between is seen twice,
	// which is harmless; none is missed.
	if m.mon, err = pnl.NewMonitor(h); err != nil {
		return nil, err
	}
	if m.c, err = pnl.Dial(h, unix.NETLINK_ROUTE); err != nil {
		m.mon.Close()
		return nil, fmt.Errorf("link monitor: %w", err)
	}
	if err := m.list(); err != nil {
		m.mon.Close()
		m.c.Close()
		return nil, err
	}
	m.wg.Add(1)
	go m.run()
	return m, nil
}

func (m *LinkMonitor) list() error {
	ctx := context.Background()
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.c.Links(ctx, func() { clear(m.carrier); clear(m.names) }, func(ev pnl.Event) {
		m.carrier[ev.Index] = ev.Carrier()
		m.names[ev.Index] = ev.Name
	})
	if err != nil {
		return fmt.Errorf("link monitor: list links: %w", err)
	}
	err = m.c.Addrs(ctx, func() { clear(m.nets) }, func(ev pnl.Event) {
		m.nets[ev.Index] = appendPrefix(m.nets[ev.Index], ev.Prefix)
	})
	if err != nil {
		return fmt.Errorf("link monitor: list addresses: %w", err)
	}
	return nil
}

// run receives until Close; any other error (events lost to an overrun
// included) ends it, and Drain reports it so the owner subscribes again.
func (m *LinkMonitor) run() {
	defer m.wg.Done()
	for {
		err := m.mon.Receive(func(ev pnl.Event) {
			switch ev.Kind {
			case pnl.LinkNew, pnl.LinkDel:
				m.onLink(ev)
			case pnl.AddrNew, pnl.AddrDel:
				m.onAddr(ev)
			}
		})
		if err == nil {
			continue
		}
		select {
		case <-m.done:
		default:
			m.fail(err)
		}
		return
	}
}

func (m *LinkMonitor) onLink(ev pnl.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Kind == pnl.LinkDel {
		if m.carrier[ev.Index] {
			m.addLocked(CarrierEvent{Index: ev.Index, Name: ev.Name, Prefixes: m.nets[ev.Index]})
		}
		delete(m.carrier, ev.Index)
		delete(m.names, ev.Index)
		delete(m.nets, ev.Index)
		return
	}
	c := ev.Carrier()
	m.names[ev.Index] = ev.Name
	was, known := m.carrier[ev.Index]
	m.carrier[ev.Index] = c
	if !known || was == c {
		// A new link (a workload's veth, say) changes no session's
		// fate: only changes of links seen before are events.
		return
	}
	m.addLocked(CarrierEvent{Index: ev.Index, Name: ev.Name, Carrier: c, Prefixes: slices.Clone(m.nets[ev.Index])})
}

func (m *LinkMonitor) onAddr(ev pnl.Event) {
	p := ev.Prefix
	if ev.Kind == pnl.AddrDel {
		if l, err := m.c.Link(ev.Index); err != nil || !l.Carrier() {
			return // a flush on the way down, or the link is gone; see the type comment
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Kind == pnl.AddrNew {
		m.nets[ev.Index] = appendPrefix(m.nets[ev.Index], p)
		return
	}
	if !m.carrier[ev.Index] {
		return
	}
	m.nets[ev.Index] = slices.DeleteFunc(m.nets[ev.Index], func(q netip.Prefix) bool { return q == p })
}

func appendPrefix(ps []netip.Prefix, p netip.Prefix) []netip.Prefix {
	if slices.Contains(ps, p) {
		return ps
	}
	return append(ps, p)
}

func (m *LinkMonitor) addLocked(ev CarrierEvent) {
	m.events = append(m.events, ev)
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *LinkMonitor) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = fmt.Errorf("link monitor: %w", err)
	}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// NoCarrier returns the links without carrier now that have connected
// prefixes, each with its prefixes as last seen (Carrier false), in index
// order.
func (m *LinkMonitor) NoCarrier() []CarrierEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []CarrierEvent
	for i, c := range m.carrier {
		if !c && len(m.nets[i]) > 0 {
			out = append(out, CarrierEvent{Index: i, Name: m.names[i], Prefixes: slices.Clone(m.nets[i])})
		}
	}
	slices.SortFunc(out, func(a, b CarrierEvent) int { return a.Index - b.Index })
	return out
}

// Kick signals (coalesced) that Drain has something new.
func (m *LinkMonitor) Kick() <-chan struct{} { return m.kick }

// Drain returns the carrier changes since the last call, oldest first, and
// the first error of the subscriptions (events may have been lost then).
func (m *LinkMonitor) Drain() ([]CarrierEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, err := m.events, m.err
	m.events, m.err = nil, nil
	return evs, err
}

// Close ends the subscriptions.
func (m *LinkMonitor) Close() {
	select {
	case <-m.done:
	default:
		close(m.done)
		m.mon.Close() // unblocks run's Receive
	}
	m.wg.Wait()
	m.c.Close()
}

package platform

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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
	h    *netlink.Handle // for the link's flags at an address deletion

	mu      sync.Mutex // guards the fields below
	carrier map[int]bool
	names   map[int]string
	nets    map[int][]netip.Prefix
	events  []CarrierEvent
	err     error
}

// NewLinkMonitor subscribes to link and address changes in ns (netns.None()
// for the current namespace) and lists what exists. Events start with the
// first change after that.
func NewLinkMonitor(ns netns.NsHandle) (*LinkMonitor, error) {
	m := &LinkMonitor{
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		carrier: make(map[int]bool),
		names:   make(map[int]string),
		nets:    make(map[int][]netip.Prefix),
	}
	links := make(chan netlink.LinkUpdate, 256)
	addrs := make(chan netlink.AddrUpdate, 256)
	onErr := func(err error) { m.fail(err) }
	// Subscribe first, then list: a change in between is seen twice,
	// which is harmless; none is missed.
	if err := netlink.LinkSubscribeWithOptions(links, m.done, netlink.LinkSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return nil, fmt.Errorf("link monitor: subscribe to links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, m.done, netlink.AddrSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		close(m.done)
		return nil, fmt.Errorf("link monitor: subscribe to addresses: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		close(m.done)
		return nil, fmt.Errorf("link monitor: %w", err)
	}
	m.h = h
	if err := m.list(); err != nil {
		close(m.done)
		h.Close()
		return nil, err
	}
	m.wg.Add(1)
	go m.run(links, addrs)
	return m, nil
}

func (m *LinkMonitor) list() error {
	ls, err := m.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("link monitor: list links: %w", err)
	}
	as, err := m.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("link monitor: list addresses: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range ls {
		a := l.Attrs()
		m.carrier[a.Index] = hasCarrier(a.RawFlags)
		m.names[a.Index] = a.Name
	}
	for _, a := range as {
		if p, ok := addrPrefix(a.IPNet); ok {
			m.nets[a.LinkIndex] = appendPrefix(m.nets[a.LinkIndex], p)
		}
	}
	return nil
}

func hasCarrier(rawFlags uint32) bool {
	return rawFlags&unix.IFF_UP != 0 && rawFlags&unix.IFF_LOWER_UP != 0
}

func (m *LinkMonitor) run(links <-chan netlink.LinkUpdate, addrs <-chan netlink.AddrUpdate) {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case u, ok := <-links:
			if !ok {
				m.fail(errors.New("link subscription closed"))
				return
			}
			m.onLink(u)
		case u, ok := <-addrs:
			if !ok {
				m.fail(errors.New("address subscription closed"))
				return
			}
			m.onAddr(u)
		}
	}
}

func (m *LinkMonitor) onLink(u netlink.LinkUpdate) {
	a := u.Attrs()
	m.mu.Lock()
	defer m.mu.Unlock()
	if u.Header.Type == unix.RTM_DELLINK {
		if m.carrier[a.Index] {
			m.addLocked(CarrierEvent{Index: a.Index, Name: a.Name, Prefixes: m.nets[a.Index]})
		}
		delete(m.carrier, a.Index)
		delete(m.names, a.Index)
		delete(m.nets, a.Index)
		return
	}
	c := hasCarrier(a.RawFlags)
	m.names[a.Index] = a.Name
	was, known := m.carrier[a.Index]
	m.carrier[a.Index] = c
	if !known || was == c {
		// A new link (a workload's veth, say) changes no session's
		// fate: only changes of links seen before are events.
		return
	}
	m.addLocked(CarrierEvent{Index: a.Index, Name: a.Name, Carrier: c, Prefixes: slices.Clone(m.nets[a.Index])})
}

func (m *LinkMonitor) onAddr(u netlink.AddrUpdate) {
	p, ok := addrPrefix(&u.LinkAddress)
	if !ok {
		return
	}
	if !u.NewAddr {
		if l, err := m.h.LinkByIndex(u.LinkIndex); err != nil || !hasCarrier(l.Attrs().RawFlags) {
			return // a flush on the way down, or the link is gone; see the type comment
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u.NewAddr {
		m.nets[u.LinkIndex] = appendPrefix(m.nets[u.LinkIndex], p)
		return
	}
	if !m.carrier[u.LinkIndex] {
		return
	}
	m.nets[u.LinkIndex] = slices.DeleteFunc(m.nets[u.LinkIndex], func(q netip.Prefix) bool { return q == p })
}

func addrPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	bits, _ := n.Mask.Size()
	if !ok {
		return netip.Prefix{}, false
	}
	if a.Is4In6() && bits > 32 {
		bits -= 96 // a 16-byte mask on an IPv4 address
	}
	return netip.PrefixFrom(a.Unmap(), bits), true
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

// NoCarrier returns the links without carrier now, each with its
// connected prefixes as last seen.
func (m *LinkMonitor) NoCarrier() map[int][]netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int][]netip.Prefix)
	for i, c := range m.carrier {
		if !c && len(m.nets[i]) > 0 {
			out[i] = slices.Clone(m.nets[i])
		}
	}
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
	}
	m.wg.Wait()
	m.h.Close()
}

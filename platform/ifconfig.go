package platform

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// AddrProtocol is the address protocol (IFA_PROTO, Linux >= 6.3) of every
// address switchd configures on an interface: the kernel keeps it with the
// address, so a restarted switchd finds its own addresses by it, adopts
// them without touching them, and never removes an address without it. It
// is the same number as switchd's route protocol (fib.Protocol), so one
// number marks everything switchd owns in the kernel; the kernel itself
// uses 0-3 (unspecified, loopback, router advertisement, link-local).
const AddrProtocol = 77

// InterfaceConfig is what the config asks of one existing interface (a
// link switchd did not create: it is configured, never created or
// deleted). A nil or zero field leaves that property as the kernel has
// it.
type InterfaceConfig struct {
	Name string
	// Enabled sets the link administratively up or down.
	Enabled *bool
	// MTU is the link's MTU (0: leave it).
	MTU uint32
	// Description is the kernel's interface alias (ifalias).
	Description *string
	// Addrs are the interface's addresses with their prefix lengths,
	// IPv4 and IPv6 (the link-local one the kernel makes is not needed).
	Addrs []netip.Prefix
}

func (c InterfaceConfig) equal(o InterfaceConfig) bool {
	return c.Name == o.Name && ptrEqual(c.Enabled, o.Enabled) && c.MTU == o.MTU &&
		ptrEqual(c.Description, o.Description) && slices.Equal(c.Addrs, o.Addrs)
}

func ptrEqual[T comparable](a, b *T) bool { return a == b || (a != nil && b != nil && *a == *b) }

// Interfaces reconciles a namespace's interfaces with their config: admin
// state, MTU, description and addresses. It keeps the STYLE's three views:
// desired (SetInterface, DeleteInterface: no syscalls), the kernel's (a
// dump, kept current by link and address notifications), and what is
// pending is their difference, written by Apply, the only method that
// touches the kernel.
//
// Ownership: an address switchd adds carries AddrProtocol; only such
// addresses are ever removed (an address added by hand or by another
// program stays, even on a configured interface, and a configured address
// that is already there untagged counts as present and stays untagged).
// Admin state, MTU and description are changed only on interfaces in the
// config, and only where the config sets them.
//
// Complicating factors:
//   - An interface named in the config may not exist (yet): it is
//     reported by Missing and configured when its link appears (a link
//     notification kicks).
//   - Addresses vanish behind our back: deleted by hand, or flushed by
//     the kernel when a link goes down with IPv6 keep_addr_on_down=0.
//     Notifications of that kick, and the next Apply puts them back.
//   - IPv4 deletes the secondary addresses of a subnet with its primary
//     unless promote_secondaries is set; they come back by the same drift
//     repair, after a flap.
//   - Notifications of our own writes come back after Apply has already
//     recorded them; they change nothing.
//
// The methods should only be called from one goroutine; Kick may be
// watched from any.
type Interfaces struct {
	ns  *pnl.NS
	c   *pnl.Conn
	mon *pnl.Monitor // the watch goroutine's subscription

	desired map[string]InterfaceConfig
	links   map[int]kernelLink // the kernel's links by index
	addrs   map[addrKey]uint8  // the kernel's addresses and their protocols
	resync  bool               // dump before the next diff
	dirty   bool               // desired or kernel changed since the last Apply
	missing []string           // configured interfaces not in the kernel
	// retryAt is when writes that failed are tried again (zero: none
	// failed); backoff doubles with each failed Apply.
	retryAt time.Time
	backoff time.Duration

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	events   []ifEvent
	overrun  bool
	watchIdx map[int]bool
	watchNm  map[string]bool
	monErr   error
}

// kernelLink is a link as the kernel reports it.
type kernelLink struct {
	Index int
	Name  string
	Flags uint32
	MTU   uint32
	Alias string
}

type addrKey struct {
	Index  int
	Prefix netip.Prefix
}

// maxQueuedEvents bounds the notifications held between two Applys; past
// it they are dropped and the next Apply dumps instead.
const maxQueuedEvents = 4096

// NewInterfaces subscribes to link and address notifications in ns (nil:
// the caller's) and starts with a resync queued: the first Apply dumps
// what is there and adopts it.
func NewInterfaces(ns *pnl.NS) (*Interfaces, error) {
	r := &Interfaces{
		ns:       ns,
		desired:  map[string]InterfaceConfig{},
		links:    map[int]kernelLink{},
		addrs:    map[addrKey]uint8{},
		resync:   true,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		watchIdx: map[int]bool{},
		watchNm:  map[string]bool{},
	}
	var err error
	// Subscribe before the first dump: a change in between is seen twice
	// (harmless), none is missed.
	if r.mon, err = pnl.NewMonitor(ns); err != nil {
		return nil, fmt.Errorf("interfaces: subscribe: %w", err)
	}
	if r.c, err = pnl.Dial(ns, unix.NETLINK_ROUTE); err != nil {
		r.mon.Close()
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	r.wg.Add(1)
	go r.watch(r.mon)
	return r, nil
}

// Close ends the subscription. Everything configured stays in the kernel.
func (r *Interfaces) Close() {
	select {
	case <-r.done:
		return
	default:
	}
	close(r.done)
	r.mon.Close()
	r.wg.Wait()
	r.c.Close()
}

// SetInterface makes cfg the desired config of its interface.
func (r *Interfaces) SetInterface(cfg InterfaceConfig) {
	cfg.Addrs = slices.Clone(cfg.Addrs)
	slices.SortFunc(cfg.Addrs, comparePrefix)
	cfg.Addrs = slices.Compact(cfg.Addrs)
	if old, ok := r.desired[cfg.Name]; ok && old.equal(cfg) {
		return
	}
	r.desired[cfg.Name] = cfg
	r.dirty = true
}

// DeleteInterface drops an interface from the config: its addresses of
// ours go, the rest of the link stays as it is.
func (r *Interfaces) DeleteInterface(name string) {
	if _, ok := r.desired[name]; !ok {
		return
	}
	delete(r.desired, name)
	r.dirty = true
}

// Names are the configured interfaces, sorted.
func (r *Interfaces) Names() []string { return slices.Sorted(maps.Keys(r.desired)) }

// QueueResync makes the next Apply dump links and addresses first.
func (r *Interfaces) QueueResync() { r.resync = true }

// Kick signals (coalesced) that the kernel changed something Apply cares
// about: a configured link, or an address on one, or one of ours.
func (r *Interfaces) Kick() <-chan struct{} { return r.kick }

// Missing are the configured interfaces the kernel did not have at the
// last Apply, sorted.
func (r *Interfaces) Missing() []string { return slices.Clone(r.missing) }

// Apply takes the notifications since the last call (or dumps, after
// QueueResync or lost notifications), then writes what differs from the
// config in one batch. It returns the writes that failed, joined; they
// are tried again by the next Apply, which a resync or a notification
// brings. A configured interface that does not exist is not an error
// (Missing).
func (r *Interfaces) Apply(ctx context.Context) error {
	monErr := r.resubscribe()
	if err := r.takeEvents(ctx); err != nil {
		return errors.Join(err, monErr)
	}
	due := !r.retryAt.IsZero() && !time.Now().Before(r.retryAt)
	if !r.dirty && !due {
		return monErr
	}
	ops, missing := plan(r.desired, r.links, r.addrs)
	r.missing = missing
	r.watchLinks()
	r.dirty = false
	err := r.write(ops)
	if err == nil {
		r.retryAt, r.backoff = time.Time{}, 0
		return monErr
	}
	r.backoff = min(max(2*r.backoff, minRetry), maxRetry)
	r.retryAt = time.Now().Add(r.backoff)
	return errors.Join(err, monErr)
}

// resubscribe replaces a notification reader that failed (its error is
// returned once) with a new subscription and queues a resync, since
// notifications were lost; if none can be had, that error is returned
// and every Apply dumps until one can.
func (r *Interfaces) resubscribe() error {
	r.mu.Lock()
	failed := r.monErr
	r.mu.Unlock()
	if failed == nil {
		return nil
	}
	mon, err := pnl.NewMonitor(r.ns)
	if err != nil {
		return fmt.Errorf("interfaces: notifications stopped (%v), and no new subscription: %w", failed, err)
	}
	r.mon.Close()
	r.mon = mon
	r.mu.Lock()
	r.monErr = nil
	r.mu.Unlock()
	r.resync = true
	r.wg.Add(1)
	go r.watch(mon)
	return fmt.Errorf("interfaces: notifications failed, subscribed again: %w", failed)
}

// Back-off of failed writes: a link that refuses an MTU is not asked
// again on every turn of the daemon's loop.
const (
	minRetry = 500 * time.Millisecond
	maxRetry = 30 * time.Second
)

// NextRetry is when Apply wants to try failed writes again (zero: nothing
// failed).
func (r *Interfaces) NextRetry() time.Time { return r.retryAt }

// takeEvents updates the kernel view from the queued notifications, or
// from a dump.
func (r *Interfaces) takeEvents(ctx context.Context) error {
	r.mu.Lock()
	evs, overrun, stopped := r.events, r.overrun, r.monErr != nil
	r.events, r.overrun = nil, false
	r.mu.Unlock()
	if overrun || r.resync || stopped {
		// Without notifications (no new subscription could be had)
		// every Apply dumps.
		if err := r.dump(ctx); err != nil {
			return err
		}
		r.resync, r.dirty = false, true
		return nil
	}
	for _, ev := range evs {
		if r.onEvent(ev) {
			r.dirty = true
		}
	}
	return nil
}

// onEvent applies one notification to the kernel view and reports
// whether it changed anything the plan reads: a link's name, admin state,
// MTU or alias (not its carrier), an address of ours, or a configured
// address on its configured link. Other owners' addresses (a workload's
// veth, the kernel's link-local ones) only update the view.
func (r *Interfaces) onEvent(ev ifEvent) bool {
	switch ev.kind {
	case pnl.LinkNew:
		old, ok := r.links[ev.link.Index]
		r.links[ev.link.Index] = ev.link
		changed := !ok || old.Name != ev.link.Name || old.MTU != ev.link.MTU || old.Alias != ev.link.Alias ||
			(old.Flags^ev.link.Flags)&unix.IFF_UP != 0
		_, want := r.desired[ev.link.Name]
		_, wanted := r.desired[old.Name]
		return changed && (want || ok && wanted)
	case pnl.LinkDel:
		delete(r.links, ev.link.Index)
		for k := range r.addrs {
			if k.Index == ev.link.Index {
				delete(r.addrs, k)
			}
		}
		return true
	case pnl.AddrNew:
		old, ok := r.addrs[ev.addr]
		r.addrs[ev.addr] = ev.proto
		return (!ok || old != ev.proto) && (old == AddrProtocol || ev.proto == AddrProtocol || r.configured(ev.addr))
	case pnl.AddrDel:
		old, ok := r.addrs[ev.addr]
		delete(r.addrs, ev.addr)
		return ok && (old == AddrProtocol || r.configured(ev.addr))
	}
	return false
}

// configured reports whether the config puts the address k on its link.
func (r *Interfaces) configured(k addrKey) bool {
	l, ok := r.links[k.Index]
	return ok && slices.Contains(r.desired[l.Name].Addrs, k.Prefix)
}

func (r *Interfaces) dump(ctx context.Context) error {
	links := map[int]kernelLink{}
	addrs := map[addrKey]uint8{}
	if err := r.c.Links(ctx, func() { clear(links) }, func(e pnl.Event) {
		if ev, ok := ifEventOf(e); ok {
			links[ev.link.Index] = ev.link
		}
	}); err != nil {
		return fmt.Errorf("interfaces: %w", err)
	}
	if err := r.c.Addrs(ctx, func() { clear(addrs) }, func(e pnl.Event) {
		addrs[addrKey{Index: e.Index, Prefix: e.Prefix}] = e.Proto
	}); err != nil {
		return fmt.Errorf("interfaces: %w", err)
	}
	r.links, r.addrs = links, addrs
	return nil
}

// watchLinks tells the notification reader which links matter now: the
// configured names and the indexes they have.
func (r *Interfaces) watchLinks() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.watchIdx)
	clear(r.watchNm)
	for name := range r.desired {
		r.watchNm[name] = true
	}
	for _, l := range r.links {
		if r.watchNm[l.Name] {
			r.watchIdx[l.Index] = true
		}
	}
	// Links that carry addresses of ours (an interface dropped from the
	// config, its addresses still to go).
	for k, p := range r.addrs {
		if p == AddrProtocol {
			r.watchIdx[k.Index] = true
		}
	}
}

// ifOp is one write: a link change or an address added or removed.
type ifOp struct {
	name string // the interface, for errors
	link *linkChange
	addr netip.Prefix
	del  bool
	idx  int
}

type linkChange struct {
	Index int
	Up    *bool
	MTU   uint32
	Alias *string
}

func (o ifOp) String() string {
	switch {
	case o.link != nil:
		var parts []string
		if o.link.Up != nil {
			parts = append(parts, map[bool]string{true: "up", false: "down"}[*o.link.Up])
		}
		if o.link.MTU != 0 {
			parts = append(parts, fmt.Sprintf("mtu %d", o.link.MTU))
		}
		if o.link.Alias != nil {
			parts = append(parts, fmt.Sprintf("description %q", *o.link.Alias))
		}
		return fmt.Sprintf("interface %s: set %s", o.name, strings.Join(parts, ", "))
	case o.del:
		return fmt.Sprintf("interface %s: remove address %v", o.name, o.addr)
	}
	return fmt.Sprintf("interface %s: add address %v", o.name, o.addr)
}

// plan is the difference between desired and the kernel: address removals
// first (an address moving between interfaces leaves before it arrives),
// then link changes, then additions, each in name and address order. It
// also lists the configured interfaces the kernel lacks.
func plan(desired map[string]InterfaceConfig, links map[int]kernelLink, addrs map[addrKey]uint8) (ops []ifOp, missing []string) {
	byName := make(map[string]kernelLink, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	want := map[addrKey]bool{}
	var changes, adds []ifOp
	for _, name := range slices.Sorted(maps.Keys(desired)) {
		cfg := desired[name]
		l, ok := byName[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if ch, ok := linkDiff(cfg, l); ok {
			changes = append(changes, ifOp{name: name, link: &ch})
		}
		for _, p := range cfg.Addrs {
			k := addrKey{l.Index, p}
			want[k] = true
			if _, ok := addrs[k]; !ok {
				adds = append(adds, ifOp{name: name, addr: p, idx: l.Index})
			}
		}
	}
	var dels []ifOp
	for k, proto := range addrs {
		if proto != AddrProtocol || want[k] {
			continue
		}
		dels = append(dels, ifOp{name: links[k.Index].Name, addr: k.Prefix, idx: k.Index, del: true})
	}
	slices.SortFunc(dels, func(a, b ifOp) int {
		return cmp.Or(strings.Compare(a.name, b.name), comparePrefix(a.addr, b.addr))
	})
	return slices.Concat(dels, changes, adds), missing
}

// linkDiff is the change cfg asks of link l, if any.
func linkDiff(cfg InterfaceConfig, l kernelLink) (linkChange, bool) {
	ch := linkChange{Index: l.Index}
	if cfg.Enabled != nil && (l.Flags&unix.IFF_UP != 0) != *cfg.Enabled {
		ch.Up = cfg.Enabled
	}
	if cfg.MTU != 0 && cfg.MTU != l.MTU {
		ch.MTU = cfg.MTU
	}
	if cfg.Description != nil && *cfg.Description != l.Alias {
		ch.Alias = cfg.Description
	}
	return ch, ch.Up != nil || ch.MTU != 0 || ch.Alias != nil
}

// write sends ops in one batch and records in the kernel view what
// succeeded.
func (r *Interfaces) write(ops []ifOp) error {
	if len(ops) == 0 {
		return nil
	}
	var b pnl.Batch
	for _, o := range ops {
		encodeOp(&b, o)
	}
	errs := make([]error, len(ops))
	if err := r.c.Exec(&b, func(i int, _ nlMessage, err error) {
		if err != nil {
			errs[i] = err
		}
	}); err != nil {
		r.resync = true
		return fmt.Errorf("interfaces: %w", err)
	}
	var out []error
	for i, o := range ops {
		err := errs[i]
		if o.del && (errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)) {
			err = nil // gone already
		}
		if err != nil {
			if errors.Is(err, unix.ENODEV) {
				r.resync = true // the link went away meanwhile
			}
			out = append(out, fmt.Errorf("%v: %w", o, err))
			continue
		}
		r.record(o)
	}
	// Failed writes stay pending: the kernel view does not have them, so
	// the Apply at NextRetry plans them again.
	return errors.Join(out...)
}

// record puts a successful write into the kernel view.
func (r *Interfaces) record(o ifOp) {
	switch {
	case o.link != nil:
		l := r.links[o.link.Index]
		if o.link.Up != nil {
			if *o.link.Up {
				l.Flags |= unix.IFF_UP
			} else {
				l.Flags &^= unix.IFF_UP
			}
		}
		if o.link.MTU != 0 {
			l.MTU = o.link.MTU
		}
		if o.link.Alias != nil {
			l.Alias = *o.link.Alias
		}
		r.links[o.link.Index] = l
	case o.del:
		delete(r.addrs, addrKey{o.idx, o.addr})
	default:
		r.addrs[addrKey{o.idx, o.addr}] = AddrProtocol
	}
}

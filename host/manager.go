package host

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/switchd/switchd/fib"
	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// BlockSizes are the default block prefix lengths for pools that do not set
// their own; 0 means DefaultBlockBitsV4 / DefaultBlockBitsV6.
type BlockSizes struct{ V4, V6 int }

// Options configure a Manager.
type Options struct {
	// StateDir holds the allocation records (see store). Required; one
	// Manager per directory (it is locked).
	StateDir string
	// Pools this host claims blocks from, tried in order per family.
	Pools      []Pool
	BlockSizes BlockSizes
	// StaticPrefixes are where a fixed address outside the pools may come
	// from (announced per address); any other fixed address is refused.
	StaticPrefixes []netip.Prefix
	// HostNetns is the path of the host's network namespace; "" means the
	// namespace of the thread calling NewManager (normally the process's).
	HostNetns string
	// IfacePrefix starts the host-side veth names; "" means "swc". Veths
	// with this prefix and no record are removed at start.
	IfacePrefix string
	// LeaveForwarding keeps ip_forward and IPv6 all.forwarding as they are;
	// otherwise NewManager turns both on (workloads need a router).
	LeaveForwarding bool
	Logger          *slog.Logger
}

// Manager owns the workload endpoints of one host and their addresses.
//
// Crash safety: an address is recorded (block claim, then endpoint record,
// both fsynced) before any interface carries it, and an endpoint's record is
// removed only after its interface is gone. So after a crash every record
// either has its host-side interface (the record is the truth and the setup
// is finished again) or does not (the endpoint never came up or was being
// deleted: released). Nothing is handed out twice, nothing leaks.
//
// What it wants of fib and BGP, and what happens to endpoints, it
// publishes as feeds (feed.go).
//
// Methods are safe for concurrent use; calls for one endpoint ID are
// serialized.
type Manager struct {
	log     *slog.Logger
	prefix  string
	feeds   *feeds
	hostNS  *pnl.NS
	nl      *netlink.Handle // for what is not on the hot path
	conns   chan *rtconn    // idle rtnetlink sockets in the host netns
	st      *store
	idLocks [64]sync.Mutex

	mu         sync.Mutex // guards the fields below
	ipam       *IPAM
	eps        map[string]*epState
	advertised []netip.Prefix
}

type epState struct {
	ep      Endpoint
	ifindex int // of the host side
}

// NewManager opens the state directory, reconciles the records with the
// kernel and publishes the desired routes and the endpoints it adopted.
func NewManager(opts Options) (*Manager, error) {
	pools := slices.Clone(opts.Pools)
	for i := range pools {
		if pools[i].BlockBits == 0 {
			pools[i].BlockBits = opts.BlockSizes.V4
			if pools[i].Prefix.Addr().Is6() {
				pools[i].BlockBits = opts.BlockSizes.V6
			}
		}
	}
	ipam, err := NewIPAM(pools, opts.StaticPrefixes)
	if err != nil {
		return nil, fmt.Errorf("host manager: %w", err)
	}
	m := &Manager{
		log:    opts.Logger,
		prefix: opts.IfacePrefix,
		feeds:  newFeeds(),
		ipam:   ipam,
		eps:    map[string]*epState{},
		conns:  make(chan *rtconn, 16),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.prefix == "" {
		m.prefix = "swc"
	}
	if len(m.prefix) > 8 || validIfName(m.prefix) != nil {
		return nil, fmt.Errorf("host manager: interface prefix %q: %w: 1-8 bytes of an interface name", m.prefix, ErrInvalidRequest)
	}
	if opts.HostNetns == "" {
		m.hostNS, err = pnl.CurrentNS()
	} else {
		m.hostNS, err = openNetns(opts.HostNetns)
	}
	if err != nil {
		return nil, fmt.Errorf("host manager: host netns: %w", err)
	}
	if m.nl, err = netlink.NewHandleAt(netns.NsHandle(m.hostNS.Fd()), unix.NETLINK_ROUTE); err != nil {
		m.hostNS.Close()
		return nil, fmt.Errorf("host manager: netlink in host netns: %w", err)
	}
	if m.st, err = openStore(opts.StateDir); err != nil {
		m.Close()
		return nil, fmt.Errorf("host manager: %w", err)
	}
	if !opts.LeaveForwarding {
		if err := writeSysctls(m.hostNS, globalForwarding); err != nil {
			m.Close()
			return nil, fmt.Errorf("host manager: enable forwarding: %w", err)
		}
	}
	if v, err := readSysctl(m.hostNS, "net/ipv4/conf/all/rp_filter"); err == nil && v == "2" {
		m.log.Warn("net.ipv4.conf.all.rp_filter is 2 (loose): workload interfaces get loose reverse-path filtering, not strict")
	}
	if err := m.reconcile(); err != nil {
		m.Close()
		return nil, fmt.Errorf("host manager: %w", err)
	}
	return m, nil
}

// Close releases the state directory and handles; endpoints stay in the
// kernel.
func (m *Manager) Close() {
	if m.st != nil {
		m.st.close()
	}
	if m.nl != nil {
		m.nl.Close()
		m.nl = nil
	}
	for {
		select {
		case c := <-m.conns:
			c.close()
			continue
		default:
		}
		break
	}
	m.hostNS.Close()
}

// reconcile loads the records and compares them with the kernel: records
// whose host-side interface vanished are released, the others are set up
// again (idempotently) and veths of ours without a record are removed.
func (m *Manager) reconcile() error {
	blocks, err := m.st.loadBlocks()
	if err != nil {
		return err
	}
	for _, b := range blocks {
		if err := m.ipam.ClaimBlock(b); err != nil {
			m.log.Error("dropping persisted block claim", "block", b, "err", err)
		}
	}
	eps, err := m.st.loadEndpoints()
	if err != nil {
		// An unreadable record may hold addresses: refuse to start rather
		// than hand them out again.
		return err
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	links, err := m.nl.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	byName := map[string]netlink.Link{}
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	blocksChanged := false
	for _, ep := range eps {
		link, ok := byName[ep.HostIface]
		if !ok {
			m.log.Info("releasing endpoint whose interface is gone", "endpoint", ep.ID, "iface", ep.HostIface, "addrs", ep.Addrs())
			if err := m.st.deleteEndpoint(ep.ID); err != nil {
				return err
			}
			continue
		}
		for _, a := range ep.Addrs() {
			nb, err := m.ipam.Restore(ep.ID, a)
			if err != nil {
				return fmt.Errorf("load endpoint %s: %w", ep.ID, err)
			}
			blocksChanged = blocksChanged || nb.IsValid()
		}
		m.warnUnfit(ep)
		st := &epState{ep: ep, ifindex: link.Attrs().Index}
		m.eps[ep.ID] = st
		if err := m.repair(st); err != nil {
			m.log.Error("re-applying endpoint", "endpoint", ep.ID, "err", err)
		}
		delete(byName, ep.HostIface)
	}
	for name, l := range byName {
		if _, ok := l.(*netlink.Veth); ok && len(name) == 15 && strings.HasPrefix(name, m.prefix) {
			m.log.Info("removing veth without a record", "iface", name)
			if err := m.deleteVeth(name); err != nil {
				m.log.Error("removing orphan veth", "iface", name, "err", err)
			}
		}
	}
	// Blocks from removed pools that hold no address are given up.
	for _, b := range m.ipam.Blocks() {
		if _, ok := m.ipam.poolOf(b.Addr()); !ok {
			before := len(m.ipam.blocks)
			m.ipam.UnclaimBlock(b)
			blocksChanged = blocksChanged || len(m.ipam.blocks) != before
		}
	}
	if blocksChanged {
		if err := m.st.saveBlocks(m.ipam.Blocks()); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.feeds.publishRoutes(m.routesLocked(), nil)
	m.advertiseLocked()
	for _, ep := range eps {
		if st, ok := m.eps[ep.ID]; ok {
			m.feeds.publishEndpoint(EndpointEvent{Type: EndpointAdded, Endpoint: st.ep})
		}
	}
	return nil
}

// repair finishes or re-asserts the kernel side of a recorded endpoint.
func (m *Manager) repair(st *epState) error {
	ep := &st.ep
	if ep.Kind == KindVM {
		link, err := m.nl.LinkByName(ep.HostIface)
		if err != nil {
			return fmt.Errorf("look up tap %s: %w", ep.HostIface, err)
		}
		return m.hostSide(link, ep)
	}
	var wns *pnl.NS // nil for Docker: its side is Docker's
	if ep.Kind != KindDocker {
		var err error
		if wns, err = openNetns(ep.Netns); err != nil {
			return err
		}
		defer wns.Close()
	}
	idx, err := m.setupContainer(ep, wns, true)
	if err == nil {
		st.ifindex = idx
	}
	return err
}

// conn returns an idle rtnetlink socket in the host netns, or a new one:
// one per concurrent Add, so Adds for different endpoints do not queue
// behind one socket.
func (m *Manager) conn() (*rtconn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	default:
	}
	c, err := dialRT(m.hostNS)
	if err != nil {
		return nil, fmt.Errorf("netlink in host netns: %w", err)
	}
	return c, nil
}

func (m *Manager) putConn(c *rtconn) {
	if !c.reusable() {
		c.close() // a batch failed as a whole
		return
	}
	select {
	case m.conns <- c:
	default:
		c.close()
	}
}

// testHook lets a test kill the process at a named point of Add.
var testHook = func(stage string) {}

func (m *Manager) idLock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &m.idLocks[h.Sum32()%uint32(len(m.idLocks))]
}

func (m *Manager) lookup(id string) (epState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.eps[id]
	if !ok {
		return epState{}, false
	}
	return *st, true
}

// AddContainer creates the endpoint of a CNI ADD. Repeating it for the same
// container and interface returns the same result (and repairs the veth if
// it vanished). On error nothing of the endpoint remains.
func (m *Manager) AddContainer(ctx context.Context, req ContainerRequest) (Result, error) {
	req.Labels = maps.Clone(req.Labels)
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	id := ContainerEndpointID(req.ContainerID, req.IfName)
	l := m.idLock(id)
	l.Lock()
	defer l.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("add %s: %w", id, err)
	}
	old, exists := m.lookup(id)
	if exists {
		if old.ep.Netns != req.Netns {
			return Result{}, fmt.Errorf("add %s: %w: endpoint exists in netns %s, not %s", id, ErrInvalidRequest, old.ep.Netns, req.Netns)
		}
		if err := fixedMatches(old.ep, req.IPv4, req.IPv6); err != nil {
			return Result{}, fmt.Errorf("add %s: %w", id, err)
		}
	}
	wns, err := openNetns(req.Netns)
	if err != nil {
		return Result{}, fmt.Errorf("add %s: %w", id, err)
	}
	defer wns.Close()
	if wns.Equal(m.hostNS) {
		return Result{}, fmt.Errorf("add %s: %w: netns %s is the host's", id, ErrInvalidRequest, req.Netns)
	}
	if exists {
		if l, err := m.nl.LinkByIndex(old.ifindex); err == nil && l.Attrs().Name == old.ep.HostIface {
			return m.result(old.ep), nil
		}
		// The veth vanished behind our back: build it again, same addresses.
		idx, err := m.setupContainer(&old.ep, wns, true)
		if err != nil {
			m.deleteVeth(old.ep.HostIface)
			return Result{}, fmt.Errorf("add %s: re-create: %w", id, err)
		}
		m.mu.Lock()
		m.eps[id].ifindex = idx
		m.feeds.publishRoutes(endpointRoutes(old.ep, idx), nil)
		m.mu.Unlock()
		return m.result(old.ep), nil
	}

	ep := Endpoint{
		ID: id, Kind: KindContainer, Name: req.ContainerID,
		HostIface: vethName(m.prefix, id), Netns: req.Netns, IfName: req.IfName,
		MAC: workloadMAC(id).String(), Labels: req.Labels,
	}
	if err := m.allocate(&ep, req.IPv4, req.IPv6); err != nil {
		return Result{}, fmt.Errorf("add %s: %w", id, err)
	}
	sync, err := m.st.recordEndpoint(ep)
	if err != nil {
		m.release(id, false)
		return Result{}, fmt.Errorf("add %s: %w", id, err)
	}
	testHook("recorded")
	synced := make(chan error, 1)
	go func() { synced <- sync() }()
	// A veth of this name without a record is a leftover: setupContainer
	// starts clean.
	idx, err := m.setupContainer(&ep, wns, false)
	if serr := <-synced; err == nil {
		err = serr
	}
	if err != nil {
		return Result{}, errors.Join(fmt.Errorf("add %s: %w", id, err), m.rollback(&ep))
	}
	testHook("configured")
	m.added(ep, idx)
	return m.result(ep), nil
}

// rollback undoes a failed Add: interface, then record, then allocation.
// If the record cannot be removed the addresses stay allocated (the next
// start releases them), so they are never handed out twice.
func (m *Manager) rollback(ep *Endpoint) error {
	var err error
	if ep.Kind == KindContainer {
		err = m.deleteVeth(ep.HostIface)
	} else {
		err = m.releaseTap(ep)
	}
	if err != nil {
		return fmt.Errorf("roll back %s: %w", ep.ID, err)
	}
	if err := m.st.deleteEndpoint(ep.ID); err != nil {
		return fmt.Errorf("roll back %s: %w", ep.ID, err)
	}
	m.release(ep.ID, false)
	return nil
}

func fixedMatches(ep Endpoint, v4, v6 netip.Addr) error {
	if v4.IsValid() && v4 != ep.IPv4 || v6.IsValid() && v6 != ep.IPv6 {
		return fmt.Errorf("%w: endpoint exists with addresses %v", ErrInvalidRequest, ep.Addrs())
	}
	return nil
}

// allocate fills ep's addresses (fixed ones or from the pools) and persists
// newly claimed blocks before returning, publishing their blackholes.
func (m *Manager) allocate(ep *Endpoint, v4, v6 netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var newBlocks []netip.Prefix
	undo := func() {
		m.ipam.Release(ep.ID)
		for _, b := range newBlocks {
			m.ipam.UnclaimBlock(b)
		}
	}
	for _, f := range []struct {
		fixed netip.Addr
		is6   bool
		dst   *netip.Addr
	}{{v4, false, &ep.IPv4}, {v6, true, &ep.IPv6}} {
		var nb netip.Prefix
		var err error
		switch {
		case f.fixed.IsValid():
			nb, err = m.ipam.Assign(ep.ID, f.fixed)
			*f.dst = f.fixed
		case m.hasPool(f.is6):
			*f.dst, nb, err = m.ipam.Allocate(ep.ID, f.is6)
		}
		if err != nil {
			undo()
			return err
		}
		if nb.IsValid() {
			newBlocks = append(newBlocks, nb)
		}
	}
	if len(ep.Addrs()) == 0 {
		return fmt.Errorf("%w: no address requested and no pool configured", ErrInvalidRequest)
	}
	if len(newBlocks) > 0 {
		if err := m.st.saveBlocks(m.ipam.Blocks()); err != nil {
			undo()
			return err
		}
		var rs []fib.Route
		for _, b := range newBlocks {
			rs = append(rs, blackhole(b))
		}
		m.feeds.publishRoutes(rs, nil)
		m.advertiseLocked()
	}
	return nil
}

func (m *Manager) hasPool(is6 bool) bool {
	return slices.ContainsFunc(m.ipam.pools, func(p Pool) bool { return p.Prefix.Addr().Is6() == is6 })
}

// release frees id's addresses; withdraw also forgets the endpoint and
// withdraws its routes, under one lock so that a later holder of the same
// address publishes its route after this withdrawal.
func (m *Manager) release(id string, withdraw bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	addrs := m.ipam.Release(id)
	if withdraw {
		if st, ok := m.eps[id]; ok {
			m.feeds.publishEndpoint(EndpointEvent{Type: EndpointRemoved, Endpoint: st.ep})
		}
		delete(m.eps, id)
		var del []fib.RouteKey
		for _, a := range addrs {
			del = append(del, hostRoute(a, 0).Key)
		}
		m.feeds.publishRoutes(nil, del)
	}
	m.advertiseLocked()
}

// AdoptVM makes an existing tap the endpoint of a VM: addresses, host
// route, proxy ARP, fe80::1 gateway. The tap stays the hypervisor's; Del
// removes only what AdoptVM added. Repeating it returns the same result.
func (m *Manager) AdoptVM(ctx context.Context, req VMRequest) (Result, error) {
	req.Labels = maps.Clone(req.Labels)
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	id := VMEndpointID(req.Name)
	l := m.idLock(id)
	l.Lock()
	defer l.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("adopt %s: %w", id, err)
	}
	link, err := m.nl.LinkByName(req.Tap)
	if isNotFound(err) {
		return Result{}, fmt.Errorf("adopt %s: tap %s: %w", id, req.Tap, ErrInterfaceMissing)
	}
	if err != nil {
		return Result{}, fmt.Errorf("adopt %s: look up tap %s: %w", id, req.Tap, err)
	}
	if old, ok := m.lookup(id); ok {
		if old.ep.HostIface != req.Tap {
			return Result{}, fmt.Errorf("adopt %s: %w: VM is adopted on tap %s, not %s", id, ErrInvalidRequest, old.ep.HostIface, req.Tap)
		}
		if err := fixedMatches(old.ep, req.IPv4, req.IPv6); err != nil {
			return Result{}, fmt.Errorf("adopt %s: %w", id, err)
		}
		if err := m.hostSide(link, &old.ep); err != nil {
			return Result{}, fmt.Errorf("adopt %s: %w", id, err)
		}
		if old.ifindex != link.Attrs().Index {
			m.mu.Lock()
			m.eps[id].ifindex = link.Attrs().Index
			m.feeds.publishRoutes(endpointRoutes(old.ep, link.Attrs().Index), nil)
			m.mu.Unlock()
		}
		return m.result(old.ep), nil
	}
	if owner := m.ifaceOwner(req.Tap); owner != "" {
		return Result{}, fmt.Errorf("adopt %s: %w: %s is the interface of endpoint %s", id, ErrInvalidRequest, req.Tap, owner)
	}
	if _, ok := link.(*netlink.Tuntap); !ok {
		return Result{}, fmt.Errorf("adopt %s: %w: %s is a %s, not a tap", id, ErrInvalidRequest, req.Tap, link.Type())
	}
	ep := Endpoint{ID: id, Kind: KindVM, Name: req.Name, HostIface: req.Tap, Labels: req.Labels}
	if req.MAC != nil {
		ep.MAC = req.MAC.String()
	}
	if err := m.allocate(&ep, req.IPv4, req.IPv6); err != nil {
		return Result{}, fmt.Errorf("adopt %s: %w", id, err)
	}
	if err := m.st.saveEndpoint(ep); err != nil {
		m.release(id, false)
		return Result{}, fmt.Errorf("adopt %s: %w", id, err)
	}
	if err := m.hostSide(link, &ep); err != nil {
		return Result{}, errors.Join(fmt.Errorf("adopt %s: %w", id, err), m.rollback(&ep))
	}
	m.added(ep, link.Attrs().Index)
	return m.result(ep), nil
}

func (m *Manager) ifaceOwner(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, st := range m.eps {
		if st.ep.HostIface == name {
			return id
		}
	}
	return ""
}

// Del removes an endpoint: its veth (or what AdoptVM added to the tap), its
// record, its addresses and routes. An unknown ID is success (CNI DEL).
func (m *Manager) Del(ctx context.Context, id string) error {
	l := m.idLock(id)
	l.Lock()
	defer l.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	st, ok := m.lookup(id)
	if !ok {
		return nil
	}
	var err error
	if st.ep.Kind == KindVM {
		err = m.releaseTap(&st.ep)
	} else {
		err = m.deleteVeth(st.ep.HostIface)
	}
	if err == nil {
		err = m.st.deleteEndpoint(id)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	m.release(id, true)
	return nil
}

// Check verifies that an endpoint's kernel state matches its record (CNI
// CHECK).
func (m *Manager) Check(ctx context.Context, id string) error {
	l := m.idLock(id)
	l.Lock()
	defer l.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check %s: %w", id, err)
	}
	st, ok := m.lookup(id)
	if !ok {
		return fmt.Errorf("check %s: %w", id, ErrUnknownEndpoint)
	}
	link, err := m.nl.LinkByIndex(st.ifindex)
	if err != nil || link.Attrs().Name != st.ep.HostIface {
		return fmt.Errorf("check %s: host interface %s: %w", id, st.ep.HostIface, ErrInterfaceMissing)
	}
	if st.ep.Kind == KindVM || st.ep.Kind == KindDocker { // the workload side is the hypervisor's or Docker's
		return nil
	}
	if link.Attrs().OperState != netlink.OperUp {
		return fmt.Errorf("check %s: host interface %s is %s", id, st.ep.HostIface, link.Attrs().OperState)
	}
	wns, err := openNetns(st.ep.Netns)
	if err != nil {
		return fmt.Errorf("check %s: %w", id, err)
	}
	defer wns.Close()
	wh, err := netlink.NewHandleAt(netns.NsHandle(wns.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("check %s: netlink in %s: %w", id, st.ep.Netns, err)
	}
	defer wh.Close()
	return checkWorkload(wh, &st.ep)
}

// Get returns one endpoint.
func (m *Manager) Get(id string) (Endpoint, bool) {
	st, ok := m.lookup(id)
	return st.ep, ok
}

// List returns all endpoints, sorted by ID.
func (m *Manager) List() []Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	eps := make([]Endpoint, 0, len(m.eps))
	for _, st := range m.eps {
		eps = append(eps, st.ep)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return eps
}

// IfacePrefix starts the name of every host-side veth the Manager
// creates (Options.IfacePrefix): policy drops traffic through one it has
// no endpoint for.
func (m *Manager) IfacePrefix() string { return m.prefix }

// Blocks returns the owned blocks (each to be advertised once).
func (m *Manager) Blocks() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ipam.Blocks()
}

// Outside returns endpoint addresses outside every owned block (to be
// advertised as host prefixes).
func (m *Manager) Outside() []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ipam.Outside()
}

// Routes returns the whole desired route set (what the route feed has
// built up).
func (m *Manager) Routes() []fib.Route {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.routesLocked()
}

func (m *Manager) routesLocked() []fib.Route {
	var rs []fib.Route
	for _, b := range m.ipam.Blocks() {
		rs = append(rs, blackhole(b))
	}
	for _, st := range m.eps {
		rs = append(rs, endpointRoutes(st.ep, st.ifindex)...)
	}
	slices.SortFunc(rs, func(a, b fib.Route) int { return comparePrefix(a.Key.Dst, b.Key.Dst) })
	return rs
}

func (m *Manager) advertiseLocked() {
	ps := m.ipam.Announced()
	if slices.Equal(ps, m.advertised) && m.advertised != nil {
		return
	}
	if ps == nil {
		ps = []netip.Prefix{}
	}
	m.advertised = ps
	m.feeds.publishOriginate(ps)
}

func blackhole(b netip.Prefix) fib.Route {
	r := fib.Route{Key: fib.RouteKey{Table: fib.MainTable, Dst: b}, Type: fib.Blackhole}
	r.Normalize()
	return r
}

// endpointRoutes are the host routes to a workload: a device route (no
// gateway) per address through the host-side interface.
func endpointRoutes(ep Endpoint, ifindex int) []fib.Route {
	var rs []fib.Route
	for _, a := range ep.Addrs() {
		rs = append(rs, hostRoute(a, ifindex))
	}
	return rs
}

// hostRoute is normalized, so its key is the one fib uses (IPv6 routes get
// the kernel's default metric).
func hostRoute(a netip.Addr, ifindex int) fib.Route {
	r := fib.Route{Key: fib.RouteKey{Table: fib.MainTable, Dst: hostPrefix(a)}, Type: fib.Unicast,
		NextHops: []fib.NextHop{{Ifindex: ifindex}}}
	r.Normalize()
	return r
}

func (m *Manager) result(ep Endpoint) Result {
	r := Result{Endpoint: ep, HostMAC: HostMAC.String()}
	if ep.Kind == KindVM {
		r.HostMAC = ""
		if l, err := m.nl.LinkByName(ep.HostIface); err == nil {
			r.HostMAC = l.Attrs().HardwareAddr.String()
		}
	}
	if ep.IPv4.IsValid() {
		r.GatewayV4 = GatewayV4
	}
	if ep.IPv6.IsValid() {
		r.GatewayV6 = GatewayV6
	}
	r.Endpoint.Labels = maps.Clone(ep.Labels)
	return r
}

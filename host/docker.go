package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/switchd/switchd/fib"
	pnl "github.com/switchd/switchd/platform/netlink"
	"golang.org/x/sys/unix"
)

// Docker's libnetwork asks for addresses (its IPAM driver) before the
// endpoint that will carry them exists, and moves the workload end of the
// veth into the container itself. So a Docker endpoint is made in two
// steps: Reserve holds an address under a reservation handle, AddDocker
// hands the reserved addresses to the new endpoint (under one lock: they
// are never free in between) and makes the veth with both ends in the
// host's namespace; Docker then moves the peer. Del is the same as for
// every endpoint (deleting the host end deletes the pair, wherever the
// peer is).

// DockerRequest asks for the endpoint of a libnetwork Join.
type DockerRequest struct {
	EndpointID string // Docker's; the endpoint's ID is DockerEndpointID of it
	Sandbox    string // Docker's sandbox key (recorded, never entered)
	IPv4, IPv6 netip.Addr
	MAC        net.HardwareAddr // nil: switchd's
	Labels     map[string]string
}

// DockerEndpointID is the endpoint ID of a Docker endpoint; ':' keeps it
// apart from container IDs.
func DockerEndpointID(endpointID string) string { return "docker:" + endpointID }

// ReservationHandle is the IPAM handle Reserve holds a under.
func ReservationHandle(a netip.Addr) string { return "reserved:" + a.String() }

// dockerPeerName is the temporary name of a Docker endpoint's workload
// end in the host's namespace: 14 bytes, so that reconcile never takes it
// for a host end of ours (those are 15).
func dockerPeerName(id string) string {
	h := sha256.Sum256([]byte("peer:" + id))
	return "dkr" + hex.EncodeToString(h[:])[:11]
}

// Reserve takes an address of pool for an orchestrator that allocates
// before its endpoints exist: fixed if valid, else the pool's next free
// one. The reservation lives in memory only (a restart frees it); a block
// it claims is persisted as for any allocation.
func (m *Manager) Reserve(pool netip.Prefix, fixed netip.Addr) (netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.ContainsFunc(m.ipam.pools, func(p Pool) bool { return p.Prefix == pool }) {
		return netip.Addr{}, fmt.Errorf("reserve: %w: %v is not a configured pool", ErrInvalidRequest, pool)
	}
	var a netip.Addr
	var nb netip.Prefix
	var err error
	if fixed.IsValid() {
		if !pool.Contains(fixed) {
			return netip.Addr{}, fmt.Errorf("reserve %v: %w: not in pool %v", fixed, ErrInvalidRequest, pool)
		}
		a = fixed
		nb, err = m.ipam.Assign(ReservationHandle(a), a)
	} else {
		// The handle names the address, which is not known yet: take it
		// under a temporary handle and rename.
		a, nb, err = m.ipam.AllocateIn("reserving", pool)
		if err == nil {
			m.ipam.ReleaseAddr("reserving", a)
			m.ipam.assign(ReservationHandle(a), a)
		}
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reserve: %w", err)
	}
	if nb.IsValid() {
		if err := m.st.saveBlocks(m.ipam.Blocks()); err != nil {
			m.ipam.Release(ReservationHandle(a))
			m.ipam.UnclaimBlock(nb)
			return netip.Addr{}, fmt.Errorf("reserve: %w", err)
		}
		m.feeds.publishRoutes([]fib.Route{blackhole(nb)}, nil)
		m.advertiseLocked()
	}
	return a, nil
}

// Unreserve frees a if a reservation holds it (not once an endpoint took
// it) and reports whether it did.
func (m *Manager) Unreserve(a netip.Addr) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.ipam.Owner(a); !ok || h != ReservationHandle(a) {
		return false
	}
	m.ipam.Release(ReservationHandle(a))
	m.advertiseLocked()
	return true
}

// Pools returns the configured pools.
func (m *Manager) Pools() []Pool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Pool(nil), m.ipam.pools...)
}

// AddDocker makes the endpoint of a Docker Join: its addresses (reserved
// ones are taken over), record, veth with the host end configured as for
// a CNI container and the peer left in the host's namespace under the
// returned name for Docker to move. On error nothing of it remains (the
// reservations stay with Docker, which releases them).
func (m *Manager) AddDocker(ctx context.Context, req DockerRequest) (Result, string, error) {
	req.Labels = maps.Clone(req.Labels)
	if req.EndpointID == "" || len(req.EndpointID) > 200 || !containerIDRe.MatchString(req.EndpointID) {
		return Result{}, "", fmt.Errorf("add docker endpoint %q: %w: must match %s", req.EndpointID, ErrInvalidRequest, containerIDRe)
	}
	for _, err := range []error{validAddr(req.IPv4, false), validAddr(req.IPv6, true), validLabels(req.Labels)} {
		if err != nil {
			return Result{}, "", fmt.Errorf("add docker endpoint %s: %w: %v", req.EndpointID, ErrInvalidRequest, err)
		}
	}
	id := DockerEndpointID(req.EndpointID)
	l := m.idLock(id)
	l.Lock()
	defer l.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{}, "", fmt.Errorf("add %s: %w", id, err)
	}
	if _, exists := m.lookup(id); exists {
		return Result{}, "", fmt.Errorf("add %s: %w: duplicate endpoint", id, ErrInvalidRequest)
	}
	ep := Endpoint{
		ID: id, Kind: KindDocker, Name: req.EndpointID,
		HostIface: vethName(m.prefix, id), Netns: req.Sandbox, IfName: dockerPeerName(id),
		MAC: workloadMAC(id).String(), Labels: req.Labels,
	}
	if req.MAC != nil {
		ep.MAC = req.MAC.String()
	}
	if len(req.IPv4.AsSlice())+len(req.IPv6.AsSlice()) == 0 {
		return Result{}, "", fmt.Errorf("add %s: %w: no address", id, ErrInvalidRequest)
	}
	if err := m.takeReserved(&ep, req.IPv4, req.IPv6); err != nil {
		return Result{}, "", fmt.Errorf("add %s: %w", id, err)
	}
	if err := m.st.saveEndpoint(ep); err != nil {
		m.giveBack(ep)
		return Result{}, "", fmt.Errorf("add %s: %w", id, err)
	}
	idx, err := m.setupContainer(&ep, nil, false)
	if err != nil {
		err = fmt.Errorf("add %s: %w", id, err)
		if derr := m.deleteVeth(ep.HostIface); derr != nil {
			return Result{}, "", errors.Join(err, derr)
		}
		if derr := m.st.deleteEndpoint(id); derr != nil {
			return Result{}, "", errors.Join(err, derr)
		}
		m.giveBack(ep)
		return Result{}, "", err
	}
	m.added(ep, idx)
	return m.result(ep), ep.IfName, nil
}

// added makes a new endpoint known and publishes it: its routes, the
// endpoint event, the prefixes to announce.
func (m *Manager) added(ep Endpoint, ifindex int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.eps[ep.ID] = &epState{ep: ep, ifindex: ifindex}
	// The endpoint before its routes: a reader that drains routes, then
	// endpoints, has the endpoint of every route it took (policy before
	// the route makes the workload reachable).
	m.feeds.publishEndpoint(EndpointEvent{Type: EndpointAdded, Endpoint: ep})
	m.feeds.publishRoutes(endpointRoutes(ep, ifindex), nil)
	m.advertiseLocked()
}

// WriteStateFile replaces dir/name atomically and durably, as the
// endpoint records are written.
func WriteStateFile(dir, name string, data []byte) error { return writeFile(dir, name, data) }

// takeReserved gives ep the addresses, taking each over from its
// reservation if one holds it, else assigning it as a fixed address.
func (m *Manager) takeReserved(ep *Endpoint, v4, v6 netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var taken []netip.Addr
	undo := func() {
		for _, a := range taken {
			m.ipam.ReleaseAddr(ep.ID, a)
			m.ipam.assign(ReservationHandle(a), a)
		}
		m.ipam.Release(ep.ID)
	}
	for _, a := range []netip.Addr{v4, v6} {
		if !a.IsValid() {
			continue
		}
		if h, ok := m.ipam.Owner(a); ok && h == ReservationHandle(a) {
			m.ipam.ReleaseAddr(h, a)
			m.ipam.assign(ep.ID, a)
			taken = append(taken, a)
		} else if nb, err := m.ipam.Assign(ep.ID, a); err != nil {
			undo()
			return err
		} else if nb.IsValid() {
			undo() // only reserved addresses and claimed blocks
			m.ipam.UnclaimBlock(nb)
			return fmt.Errorf("%w: %v was not reserved", ErrInvalidRequest, a)
		}
		if a.Is6() {
			ep.IPv6 = a
		} else {
			ep.IPv4 = a
		}
	}
	return nil
}

// giveBack returns ep's addresses to their reservations (Docker still
// holds them until it releases them).
func (m *Manager) giveBack(ep Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.ipam.Release(ep.ID) {
		m.ipam.assign(ReservationHandle(a), a)
	}
}

// dockerGatewayMsg puts 169.254.1.1/32, scope link, on a Docker endpoint's
// host side. Docker cannot be told to add the static neighbour a CNI
// container gets, and proxy ARP answers only for an address the host has
// a route to (a host without a default route would leave the gateway
// unresolved); an address of its own is answered always, as fe80::1 is
// for IPv6. Scope link: never a source beyond the link.
func dockerGatewayMsg(ifindex int, name string) *rtmsg {
	return &rtmsg{what: fmt.Sprintf("add %v to %s", GatewayV4, name), enc: func(b *pnl.Batch) {
		b.Begin(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
		b.Raw(unix.AF_INET, 32, 0, unix.RT_SCOPE_LINK) // struct ifaddrmsg
		b.U32(uint32(ifindex))
		b.Attr(unix.IFA_LOCAL, GatewayV4.AsSlice())
		b.Attr(unix.IFA_ADDRESS, GatewayV4.AsSlice())
		b.End()
	}}
}

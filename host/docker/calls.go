package docker

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/switchd/switchd/host"
)

// The libnetwork remote API's requests and answers (only the fields
// switchd reads or writes).

// groupRe is what a group name may be: a label value.
var groupRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkRequest struct {
	NetworkID  string
	EndpointID string
	// Interface: CreateEndpoint's addresses, chosen by the IPAM driver.
	Interface *struct {
		Address, AddressIPv6, MacAddress string
	}
	SandboxKey string // Join
}

// checkPools refuses a network whose pools are not switchd's (another
// IPAM driver chose them: its addresses would not be routed).
func (d *Driver) checkPools(data []ipamData) error {
	pools := d.eps.Pools()
	for _, x := range data {
		p, err := netip.ParsePrefix(x.Pool)
		if err != nil {
			return fmt.Errorf("pool %q: %v", x.Pool, err)
		}
		ok := false
		for _, q := range pools {
			ok = ok || q.Prefix.Contains(p.Addr()) && q.Prefix.Bits() <= p.Bits()
		}
		if !ok {
			return fmt.Errorf("pool %v is not a switchd pool (create the network with --ipam-driver %s)", p, Name)
		}
	}
	return nil
}

func (d *Driver) createNetwork(r *http.Request) (any, error) {
	var req createNetworkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.NetworkID == "" {
		return nil, fmt.Errorf("create network: no network ID")
	}
	if err := d.checkPools(append(req.IPv4Data, req.IPv6Data...)); err != nil {
		return nil, fmt.Errorf("create network %s: %w", shortID(req.NetworkID), err)
	}
	n := Network{ID: req.NetworkID, IPv4: len(req.IPv4Data) > 0, IPv6: len(req.IPv6Data) > 0}
	opts, _ := req.Options["com.docker.network.generic"].(map[string]any)
	for k, v := range opts {
		s, _ := v.(string)
		if k != GroupOption {
			return nil, fmt.Errorf("create network %s: unknown option %s (switchd knows %s)", n.Short(), k, GroupOption)
		}
		if !groupRe.MatchString(s) {
			return nil, fmt.Errorf("create network %s: option %s=%q: must match %s", n.Short(), k, s, groupRe)
		}
		n.Group = s
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.nets[n.ID]; ok {
		return nil, fmt.Errorf("create network %s: network exists", n.Short())
	}
	d.nets[n.ID] = n
	if err := d.saveLocked(); err != nil {
		delete(d.nets, n.ID)
		return nil, err
	}
	d.kickLocked()
	return struct{}{}, nil
}

// deleteNetwork forgets a network; an unknown one is success, so that
// dockerd can always remove its side.
func (d *Driver) deleteNetwork(r *http.Request) (any, error) {
	var req networkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.nets[req.NetworkID]
	if !ok {
		return struct{}{}, nil
	}
	for _, ep := range d.eps.List() {
		if ep.Kind == host.KindDocker && ep.Labels[NetworkIDLabel] == n.Short() {
			return nil, fmt.Errorf("delete network %s: endpoint %s is still on it", n.Short(), ep.Name)
		}
	}
	delete(d.nets, req.NetworkID)
	if err := d.saveLocked(); err != nil {
		d.nets[n.ID] = n
		return nil, err
	}
	d.kickLocked()
	return struct{}{}, nil
}

func parseHost(s string, is6 bool) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %v", s, err)
	}
	if p.Addr().Is6() != is6 {
		return netip.Addr{}, fmt.Errorf("address %q: wrong family", s)
	}
	return p.Addr(), nil
}

func (d *Driver) createEndpoint(r *http.Request) (any, error) {
	var req networkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.nets[req.NetworkID]; !ok {
		return nil, fmt.Errorf("create endpoint %s: unknown network %s", shortID(req.EndpointID), shortID(req.NetworkID))
	}
	if req.EndpointID == "" {
		return nil, fmt.Errorf("create endpoint: no endpoint ID")
	}
	if _, ok := d.pend[req.EndpointID]; ok || d.joinedLocked(req.EndpointID) {
		return nil, fmt.Errorf("create endpoint %s: duplicate endpoint", shortID(req.EndpointID))
	}
	ep := endpoint{network: req.NetworkID}
	var err error
	var mac string
	if i := req.Interface; i != nil {
		if ep.ipv4, err = parseHost(i.Address, false); err == nil {
			ep.ipv6, err = parseHost(i.AddressIPv6, true)
		}
		mac = i.MacAddress
	}
	if err != nil {
		return nil, fmt.Errorf("create endpoint %s: %w", shortID(req.EndpointID), err)
	}
	if !ep.ipv4.IsValid() && !ep.ipv6.IsValid() {
		return nil, fmt.Errorf("create endpoint %s: no address (the network needs --ipam-driver %s)", shortID(req.EndpointID), Name)
	}
	if mac != "" {
		if ep.mac, err = net.ParseMAC(mac); err != nil {
			return nil, fmt.Errorf("create endpoint %s: mac %q: %v", shortID(req.EndpointID), mac, err)
		}
	}
	d.pend[req.EndpointID] = ep
	// Docker chose the addresses (our IPAM answered): the interface
	// answer is empty.
	return map[string]any{"Interface": struct{}{}}, nil
}

func (d *Driver) joinedLocked(eid string) bool {
	for _, ep := range d.eps.List() {
		if ep.ID == host.DockerEndpointID(eid) {
			return true
		}
	}
	return false
}

func (d *Driver) operInfo(*http.Request) (any, error) {
	return map[string]any{"Value": map[string]any{}}, nil
}

type staticRoute struct {
	Destination string
	RouteType   int // 1: connected
	NextHop     string
}

func (d *Driver) join(r *http.Request) (any, error) {
	var req networkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d.mu.Lock()
	ep, ok := d.pend[req.EndpointID]
	n := d.nets[ep.network]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("join %s: unknown endpoint", shortID(req.EndpointID))
	}
	if ep.network != req.NetworkID {
		return nil, fmt.Errorf("join %s: endpoint is on network %s, not %s", shortID(req.EndpointID), shortID(ep.network), shortID(req.NetworkID))
	}
	if n.ID == "" {
		return nil, fmt.Errorf("join %s: unknown network %s", shortID(req.EndpointID), shortID(req.NetworkID))
	}
	_, peer, err := d.eps.AddDocker(r.Context(), host.DockerRequest{
		EndpointID: req.EndpointID, Sandbox: req.SandboxKey, IPv4: ep.ipv4, IPv6: ep.ipv6, MAC: ep.mac,
		Labels: map[string]string{NetworkLabel: n.Label(), NetworkIDLabel: n.Short()},
	})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", shortID(req.EndpointID), err)
	}
	d.mu.Lock()
	delete(d.pend, req.EndpointID)
	d.mu.Unlock()
	res := map[string]any{
		"InterfaceName":         map[string]string{"SrcName": peer, "DstPrefix": "eth"},
		"DisableGatewayService": true,
	}
	var routes []staticRoute
	if ep.ipv4.IsValid() {
		res["Gateway"] = host.GatewayV4.String()
		routes = append(routes, staticRoute{Destination: netip.PrefixFrom(host.GatewayV4, 32).String(), RouteType: 1})
	}
	if ep.ipv6.IsValid() {
		res["GatewayIPv6"] = host.GatewayV6.String()
	}
	res["StaticRoutes"] = routes
	return res, nil
}

// leave deletes the endpoint: Docker moves the workload end back to the
// host (or has); deleting the host end removes the pair, its routes, its
// addresses and its set membership. DeleteEndpoint after it finds nothing.
func (d *Driver) leave(r *http.Request) (any, error) {
	var req networkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := d.eps.Del(r.Context(), host.DockerEndpointID(req.EndpointID)); err != nil {
		return nil, fmt.Errorf("leave %s: %w", shortID(req.EndpointID), err)
	}
	return struct{}{}, nil
}

func (d *Driver) deleteEndpoint(r *http.Request) (any, error) {
	var req networkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d.mu.Lock()
	delete(d.pend, req.EndpointID)
	d.mu.Unlock()
	if err := d.eps.Del(r.Context(), host.DockerEndpointID(req.EndpointID)); err != nil {
		return nil, fmt.Errorf("delete endpoint %s: %w", shortID(req.EndpointID), err)
	}
	return struct{}{}, nil
}

// IPAM.

const (
	addressSpace = "switchd"
	poolIDPrefix = "switchd/"
	gatewayType  = "com.docker.network.gateway"
)

func (d *Driver) ipamCapabilities(*http.Request) (any, error) {
	return map[string]bool{"RequiresMACAddress": false}, nil
}

func (d *Driver) addressSpaces(*http.Request) (any, error) {
	return map[string]string{"LocalDefaultAddressSpace": addressSpace, "GlobalDefaultAddressSpace": addressSpace}, nil
}

type poolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	V6           bool
}

// requestPool answers with the first switchd pool of the family, or the
// one asked for (--subnet) if it is switchd's. Many networks share a
// pool: a network is a group, not a subnet.
func (d *Driver) requestPool(r *http.Request) (any, error) {
	var req poolRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	fam := "IPv4"
	if req.V6 {
		fam = "IPv6"
	}
	var want netip.Prefix
	if req.Pool != "" {
		p, err := netip.ParsePrefix(req.Pool)
		if err != nil {
			return nil, fmt.Errorf("request pool %q: %v", req.Pool, err)
		}
		want = p
	}
	if req.SubPool != "" {
		return nil, fmt.Errorf("request pool: sub-pools (--ip-range) are not supported")
	}
	for _, p := range d.eps.Pools() {
		if p.Prefix.Addr().Is6() != req.V6 || want.IsValid() && want != p.Prefix {
			continue
		}
		return map[string]any{"PoolID": poolIDPrefix + p.Prefix.String(), "Pool": p.Prefix.String(), "Data": map[string]string{}}, nil
	}
	if want.IsValid() {
		return nil, fmt.Errorf("request pool: %v is not a switchd %s pool", want, fam)
	}
	return nil, fmt.Errorf("request pool: no %s pool configured", fam)
}

type addressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

func parsePoolID(id string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimPrefix(id, poolIDPrefix))
	if err != nil || !strings.HasPrefix(id, poolIDPrefix) {
		return netip.Prefix{}, fmt.Errorf("unknown pool %q", id)
	}
	return p, nil
}

// requestAddress reserves an address of the pool; the gateway Docker asks
// for at network creation is the link-local one every endpoint routes
// through (not taken from the pool).
func (d *Driver) requestAddress(r *http.Request) (any, error) {
	var req addressRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	pool, err := parsePoolID(req.PoolID)
	if err != nil {
		return nil, fmt.Errorf("request address: %w", err)
	}
	is6 := pool.Addr().Is6()
	if req.Options["RequestAddressType"] == gatewayType {
		gw := host.GatewayV4
		if is6 {
			gw = host.GatewayV6
		}
		return map[string]any{"Address": netip.PrefixFrom(gw, gw.BitLen()).String(), "Data": map[string]string{}}, nil
	}
	var fixed netip.Addr
	if req.Address != "" {
		if fixed, err = netip.ParseAddr(req.Address); err != nil {
			return nil, fmt.Errorf("request address %q: %v", req.Address, err)
		}
		if !pool.Contains(fixed) {
			return nil, fmt.Errorf("request address %v: not in pool %v", fixed, pool)
		}
	}
	a, err := d.eps.Reserve(pool, fixed)
	if err != nil {
		return nil, fmt.Errorf("request address in %v: %w", pool, err)
	}
	return map[string]any{"Address": netip.PrefixFrom(a, a.BitLen()).String(), "Data": map[string]string{}}, nil
}

func (d *Driver) releaseAddress(r *http.Request) (any, error) {
	var req addressRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(req.Address)
	if err != nil {
		return nil, fmt.Errorf("release address %q: %v", req.Address, err)
	}
	if a == host.GatewayV4 || a == host.GatewayV6 {
		return struct{}{}, nil
	}
	d.eps.Unreserve(a) // an address an endpoint took was freed with it
	return struct{}{}, nil
}

// Package endpointapi is the wire side of the daemon's endpoint API: the
// request and response types, the endpoint ID format and the Client. Its
// users (the CNI plugin, the simulator, tests) drive the daemon through its
// socket, so this package imports nothing of switchd; package host serves
// the API (host.NewAPIHandler) with these types.
//
// The API is served on the daemon's local unix socket under /v1/endpoints:
//
//	POST   /v1/endpoints/containers  ContainerAdd → 200 Result     (CNI ADD)
//	POST   /v1/endpoints/vms         VMAdopt      → 200 Result
//	GET    /v1/endpoints/{id...}     → 200 Result, 404 unknown, 409 drift (CNI CHECK)
//	DELETE /v1/endpoints/{id...}     → 204, also for an unknown ID (CNI DEL)
//	GET    /v1/endpoints             → 200 EndpointList
//
// An endpoint ID is "<container ID>/<ifname>" or "vm:<name>"; clients
// path-escape each '/'-separated segment. Every error is an Error body
// whose code is a CNI error code, so the plugin passes it on unchanged.
package endpointapi

import "net/netip"

// CNI error codes the API uses (CNI spec 1.1, "Error"; 100+ are ours).
const (
	CodeUnsupportedField  = 2   // unknown field in the request body
	CodeUnknownContainer  = 3   // unknown endpoint, or its netns does not exist
	CodeInvalidEnv        = 4   // container ID, ifname or netns (CNI_* variables) invalid
	CodeIOFailure         = 5   // reading the request failed
	CodeDecodingFailure   = 6   // request body is not JSON of the right shape
	CodeInvalidConfig     = 7   // request rejected (bad address, conflict with the existing endpoint)
	CodeTryAgainLater     = 11  // daemon not reachable (client side) or shutting down
	CodePoolExhausted     = 100 // no free address in the pools of a family
	CodeAddressInUse      = 101 // a requested fixed address belongs to another endpoint
	CodeInterfaceMissing  = 102 // a VM's tap does not exist
	CodeEndpointDrift     = 103 // CHECK: kernel state differs from the record
	CodeAddressNotAllowed = 104 // a requested fixed address is in no pool and no static prefix
	CodeInternal          = 999 // anything else (kernel or disk failure); as libcni's ErrInternal
)

// Error is the body of every error response, shaped as a CNI error.
type Error struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
	// Status is the HTTP status it came with (not sent).
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Details
}

// ContainerAdd is the body of POST /v1/endpoints/containers.
type ContainerAdd struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname,omitempty"` // "" means eth0
	Netns       string `json:"netns"`            // path, as CNI_NETNS
	// Fixed addresses; unset families are allocated from the pools.
	IPv4   netip.Addr        `json:"ipv4,omitzero"`
	IPv6   netip.Addr        `json:"ipv6,omitzero"`
	Labels map[string]string `json:"labels,omitempty"`
}

// VMAdopt is the body of POST /v1/endpoints/vms.
type VMAdopt struct {
	Name   string            `json:"name"`
	Tap    string            `json:"tap"`
	MAC    string            `json:"mac,omitempty"` // the guest NIC's
	IPv4   netip.Addr        `json:"ipv4,omitzero"`
	IPv6   netip.Addr        `json:"ipv6,omitzero"`
	Labels map[string]string `json:"labels,omitempty"`
}

// EndpointList is the body of GET /v1/endpoints.
type EndpointList struct {
	Endpoints []Endpoint     `json:"endpoints"`
	Blocks    []netip.Prefix `json:"blocks"`
}

// Result is what an ADD, an adoption or a CHECK returns, enough for a CNI
// result.
type Result struct {
	Endpoint Endpoint `json:"endpoint"`
	// HostMAC is the host side's MAC (the workload's gateway MAC).
	HostMAC string `json:"host_mac,omitempty"`
	// Gateways of the workload's default routes.
	GatewayV4 netip.Addr `json:"gateway_v4,omitzero"`
	GatewayV6 netip.Addr `json:"gateway_v6,omitzero"`
}

// Kind is what sits behind an endpoint.
type Kind string

const (
	KindContainer Kind = "container" // a veth pair into a network namespace
	KindVM        Kind = "vm"        // an adopted tap (libvirt, Nova)
	// KindDocker is a veth pair whose workload end Docker moves into the
	// container (libnetwork's remote driver); the ID is "docker:<endpoint>".
	KindDocker Kind = "docker"
)

// Endpoint is one workload attachment: what the daemon persists and what
// the API returns.
type Endpoint struct {
	ID   string `json:"id"`   // ContainerEndpointID or VMEndpointID
	Kind Kind   `json:"kind"` // container | vm | docker
	// Name is the container ID or the VM name.
	Name string `json:"name"`
	// HostIface is the host-side interface: the veth end (switchd names it)
	// or the adopted tap.
	HostIface string `json:"host_iface"`
	// Netns and IfName locate the workload side of a container endpoint.
	Netns  string     `json:"netns,omitempty"`
	IfName string     `json:"ifname,omitempty"`
	IPv4   netip.Addr `json:"ipv4,omitzero"`
	IPv6   netip.Addr `json:"ipv6,omitzero"`
	// MAC is the workload's MAC (container side of the veth, or the VM's
	// NIC as given); empty if unknown.
	MAC    string            `json:"mac,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Addrs returns the endpoint's addresses.
func (e Endpoint) Addrs() []netip.Addr {
	var as []netip.Addr
	for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
		if a.IsValid() {
			as = append(as, a)
		}
	}
	return as
}

// ContainerEndpointID is the endpoint ID of a CNI attachment: container IDs
// never contain '/' (CNI restricts them to [A-Za-z0-9_.-]).
func ContainerEndpointID(containerID, ifName string) string {
	if ifName == "" {
		ifName = "eth0"
	}
	return containerID + "/" + ifName
}

// VMEndpointID is the endpoint ID of a VM's tap; ':' keeps it apart from
// container IDs.
func VMEndpointID(name string) string { return "vm:" + name }

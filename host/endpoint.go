package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/switchd/switchd/host/endpointapi"
)

// The endpoint record and its ID format are the API's (package
// endpointapi): the Manager persists and returns what clients read.
type (
	Kind     = endpointapi.Kind
	Endpoint = endpointapi.Endpoint
	Result   = endpointapi.Result
)

const (
	KindContainer = endpointapi.KindContainer
	KindVM        = endpointapi.KindVM
	KindDocker    = endpointapi.KindDocker
)

// The link-local gateways every workload routes through. The host side of
// each endpoint answers for them: 169.254.1.1 by proxy ARP (plus a static
// neighbour entry in containers), fe80::1 because the host-side interface
// carries fe80::1 itself — one fixed, well-known IPv6 gateway for every
// workload, with no proxy NDP and no wait for the kernel's generated
// link-local address to finish DAD.
var (
	GatewayV4 = netip.MustParseAddr("169.254.1.1")
	GatewayV6 = netip.MustParseAddr("fe80::1")
)

// HostMAC is the MAC address of every container endpoint's host side (as
// Calico's ee:ee:ee:ee:ee:ee): fixed so that a workload's neighbour entry
// for its gateway stays right whatever the host does to the interface.
var HostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// ContainerRequest asks for a container endpoint (a CNI ADD).
type ContainerRequest struct {
	ContainerID string
	IfName      string // inside the workload; "" means eth0
	Netns       string // path of the workload's network namespace
	// IPv4 and IPv6 request fixed addresses; unset ones are allocated from
	// the pools of their family (none if the family has no pool).
	IPv4, IPv6 netip.Addr
	Labels     map[string]string
}

// VMRequest adopts an existing tap for a VM.
type VMRequest struct {
	Name string // the VM; the endpoint ID is VMEndpointID(Name)
	Tap  string
	// MAC is the guest NIC's MAC if known: the host then needs no ARP/NDP
	// to reach the guest.
	MAC        net.HardwareAddr
	IPv4, IPv6 netip.Addr
	Labels     map[string]string
}

// ContainerEndpointID is endpointapi.ContainerEndpointID.
func ContainerEndpointID(containerID, ifName string) string {
	return endpointapi.ContainerEndpointID(containerID, ifName)
}

// VMEndpointID is endpointapi.VMEndpointID.
func VMEndpointID(name string) string { return endpointapi.VMEndpointID(name) }

// vethName is the host side of a container endpoint: a prefix plus a hash of
// the ID, 15 bytes, stable so a retried or restarted Add finds its veth.
func vethName(prefix, id string) string {
	h := sha256.Sum256([]byte(id))
	return prefix + hex.EncodeToString(h[:])[:15-len(prefix)]
}

// workloadMAC is a stable locally administered unicast MAC for the
// container side, so the host's static neighbour entry survives re-creation.
func workloadMAC(id string) net.HardwareAddr {
	h := sha256.Sum256([]byte("mac:" + id))
	return net.HardwareAddr{0x0e, h[0], h[1], h[2], h[3], h[4]}
}

var (
	containerIDRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)
	nameRe        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:\-]*$`)
)

func validIfName(n string) error {
	if n == "" || len(n) > 15 || n == "." || n == ".." || strings.ContainsAny(n, "/: \t\n") {
		return fmt.Errorf("interface name %q: must be 1-15 bytes without '/', ':' or spaces", n)
	}
	return nil
}

func validLabels(l map[string]string) error {
	for k := range l {
		if k == "" {
			return fmt.Errorf("label with empty key")
		}
	}
	return nil
}

func validAddr(a netip.Addr, want6 bool) error {
	if !a.IsValid() {
		return nil
	}
	if a.Is6() != want6 || a.Is4In6() {
		return fmt.Errorf("address %v is not of its field's family", a)
	}
	return nil
}

func (r *ContainerRequest) validate() error {
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	var errs []string
	if len(r.ContainerID) > 200 || !containerIDRe.MatchString(r.ContainerID) {
		errs = append(errs, fmt.Sprintf("container ID %q: must match %s and be at most 200 bytes", r.ContainerID, containerIDRe))
	}
	if err := validIfName(r.IfName); err != nil {
		errs = append(errs, err.Error())
	}
	if r.Netns == "" || !filepath.IsAbs(r.Netns) {
		errs = append(errs, fmt.Sprintf("netns %q: must be an absolute path", r.Netns))
	}
	for _, err := range []error{validAddr(r.IPv4, false), validAddr(r.IPv6, true), validLabels(r.Labels)} {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("container %q: %w: %s", r.ContainerID, ErrInvalidRequest, strings.Join(errs, "; "))
	}
	return nil
}

func (r *VMRequest) validate() error {
	var errs []string
	if len(r.Name) > 200 || !nameRe.MatchString(r.Name) {
		errs = append(errs, fmt.Sprintf("VM name %q: must match %s and be at most 200 bytes", r.Name, nameRe))
	}
	if err := validIfName(r.Tap); err != nil {
		errs = append(errs, "tap "+err.Error())
	}
	if r.MAC != nil && len(r.MAC) != 6 {
		errs = append(errs, fmt.Sprintf("MAC %v: not an Ethernet address", r.MAC))
	}
	for _, err := range []error{validAddr(r.IPv4, false), validAddr(r.IPv6, true), validLabels(r.Labels)} {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("VM %q: %w: %s", r.Name, ErrInvalidRequest, strings.Join(errs, "; "))
	}
	return nil
}

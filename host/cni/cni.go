// Package cni is switchd's CNI plugin (CNI spec 1.0/1.1: ADD, DEL, CHECK,
// VERSION, STATUS, GC). It does no kernel work: every command is a call to
// the local daemon's endpoint API (package endpointapi) on its unix
// socket, and the daemon's host.Manager creates, checks and removes the
// endpoint. It imports no other part of switchd.
//
// Network configuration:
//
//	{
//	  "cniVersion": "1.1.0",
//	  "name": "switchd",
//	  "type": "switchd",
//	  "socket": "/run/switchd/switchd.sock",   // optional, this default
//	  "labels": {"tier": "web"},               // optional, endpoint labels
//	  "timeout": "60s",                        // optional, per daemon call
//	  "runtimeConfig": {"ips": ["10.0.0.5"]}   // optional, "ips" capability
//	}
//
// Addresses come from the daemon's pools (there is no "ipam" section); the
// workload gets /32 and /128 addresses and default routes via 169.254.1.1
// and fe80::1. An address asked for in runtimeConfig.ips must lie in one of
// the daemon's pools or static prefixes (/switchd/ipam), else ADD fails
// with code 104 (endpointapi.CodeAddressNotAllowed).
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/switchd/switchd/host/endpointapi"
)

// NetworkLabel is the label every endpoint the plugin adds carries: the CNI
// network's name, so that GC only ever removes endpoints of its network.
const NetworkLabel = "switchd.cni/network"

// PodNamespaceLabel and PodNameLabel carry K8S_POD_NAMESPACE and
// K8S_POD_NAME from CNI_ARGS (as a Kubernetes runtime sets them), by which
// the daemon in cluster mode finds the endpoint's pod (host/kubernetes).
const (
	PodNamespaceLabel = "switchd.cni/k8s-pod-namespace"
	PodNameLabel      = "switchd.cni/k8s-pod-name"
)

// CNI codes of STATUS (spec 1.1).
const (
	codeUnavailable = 50
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.PluginConf
	Socket        string            `json:"socket,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Timeout       string            `json:"timeout,omitempty"`
	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitzero"`

	timeout    time.Duration
	ipv4, ipv6 netip.Addr
}

// Versions are the CNI spec versions the plugin speaks (results convert
// down to 0.3.0; CHECK needs 0.4.0, STATUS and GC 1.1.0).
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Main runs one CNI command as the CNI_* environment and stdin give it,
// prints the result or the CNI error to stdout and returns the exit code.
// Without CNI_COMMAND it prints what it is to stderr and returns 0.
func Main() int {
	e := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC,
	}, Versions, "switchd CNI plugin: container endpoints through the local switchd daemon")
	if e != nil {
		if err := e.Print(); err != nil {
			fmt.Fprintf(os.Stderr, "switchd cni: print error %v: %v\n", e, err)
		}
		return 1
	}
	return 0
}

// parseConf decodes and checks the network configuration: malformed JSON
// is code 6, a configuration switchd cannot serve code 2 or 7.
func parseConf(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode network config", err.Error())
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode prevResult of network config", err.Error())
	}
	if !c.IPAM.IsEmpty() {
		return nil, types.NewError(types.ErrUnsupportedField, fmt.Sprintf("unsupported field ipam.type=%q", c.IPAM.Type),
			"the switchd daemon allocates addresses from its own pools; remove the ipam section")
	}
	if c.Socket == "" {
		c.Socket = endpointapi.DefaultSocket
	}
	if !filepath.IsAbs(c.Socket) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("socket %q: must be an absolute path", c.Socket))
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("timeout %q: must be a positive duration like \"30s\"", c.Timeout))
		}
		c.timeout = d
	}
	for k := range c.Labels {
		if k == "" || k == NetworkLabel {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("label %q: keys must be non-empty and not %s", k, NetworkLabel))
		}
	}
	for _, s := range c.RuntimeConfig.IPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			// The "ips" capability convention allows CIDR notation.
			p, perr := netip.ParsePrefix(s)
			if perr != nil {
				return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("runtimeConfig.ips %q: not an address", s))
			}
			a = p.Addr()
		}
		dst := &c.ipv4
		if a.Is6() {
			dst = &c.ipv6
		}
		if dst.IsValid() {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("runtimeConfig.ips %v: more than one address of a family", c.RuntimeConfig.IPs))
		}
		*dst = a
	}
	return c, nil
}

func (c *NetConf) client() *endpointapi.Client {
	return &endpointapi.Client{Socket: c.Socket, Timeout: c.timeout}
}

// cniError turns the client's *endpointapi.Error (already a CNI code)
// into the CNI library's error type.
func cniError(err error) error {
	var e *endpointapi.Error
	if errors.As(err, &e) {
		return types.NewError(e.Code, e.Msg, e.Details)
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

func cmdAdd(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	labels := map[string]string{NetworkLabel: c.Name}
	for k, v := range c.Labels {
		labels[k] = v
	}
	podArgs(args.Args, labels)
	res, err := c.client().AddContainer(context.Background(), endpointapi.ContainerAdd{
		ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns,
		IPv4: c.ipv4, IPv6: c.ipv6, Labels: labels,
	})
	if err != nil {
		return cniError(err)
	}
	return types.PrintResult(result(res, args.Netns), c.CNIVersion)
}

// podArgs copies the pod's namespace and name from CNI_ARGS
// ("K=V;K=V") into labels; other arguments are not the plugin's.
func podArgs(cniArgs string, labels map[string]string) {
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			labels[PodNamespaceLabel] = v
		case "K8S_POD_NAME":
			labels[PodNameLabel] = v
		}
	}
}

// result is the CNI result of an endpoint: interface 0 the host-side veth,
// interface 1 the workload's, its /32 and /128 with the link-local
// gateways, and default routes through them.
func result(res endpointapi.Result, netns string) *types100.Result {
	ep := res.Endpoint
	r := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: ep.HostIface, Mac: res.HostMAC},
			{Name: ep.IfName, Mac: ep.MAC, Sandbox: netns},
		},
	}
	for _, a := range ep.Addrs() {
		gw, dst := res.GatewayV4, netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if a.Is6() {
			gw, dst = res.GatewayV6, netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		r.IPs = append(r.IPs, &types100.IPConfig{
			Interface: types100.Int(1),
			Address:   net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())},
			Gateway:   gw.AsSlice(),
		})
		r.Routes = append(r.Routes, &types.Route{
			Dst: net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(0, a.BitLen())},
			GW:  gw.AsSlice(),
		})
	}
	return r
}

// cmdDel removes the endpoint; the daemon treats an unknown one as done,
// and needs no netns (the host side of the veth takes the workload side
// with it).
func cmdDel(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := c.client().Del(context.Background(), endpointapi.ContainerEndpointID(args.ContainerID, args.IfName)); err != nil {
		return cniError(err)
	}
	return nil
}

// cmdCheck asks the daemon to verify the endpoint against the kernel and
// compares it with the prevResult the runtime kept from ADD.
func cmdCheck(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if c.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", "CHECK needs the prevResult of ADD")
	}
	prev, err := types100.NewResultFromResult(c.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "decode prevResult of network config", err.Error())
	}
	id := endpointapi.ContainerEndpointID(args.ContainerID, args.IfName)
	res, err := c.client().Check(context.Background(), id)
	if err != nil {
		return cniError(err)
	}
	ep := res.Endpoint
	if ep.Netns != args.Netns {
		return types.NewError(endpointapi.CodeEndpointDrift, "endpoint differs from prevResult", fmt.Sprintf("endpoint %s is in netns %s, CNI_NETNS is %s", id, ep.Netns, args.Netns))
	}
	var prevAddrs []netip.Addr
	for _, ip := range prev.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		prevAddrs = append(prevAddrs, a.Unmap())
	}
	slices.SortFunc(prevAddrs, netip.Addr.Compare)
	have := ep.Addrs()
	slices.SortFunc(have, netip.Addr.Compare)
	if !slices.Equal(prevAddrs, have) {
		return types.NewError(endpointapi.CodeEndpointDrift, "endpoint differs from prevResult", fmt.Sprintf("endpoint %s has addresses %v, prevResult %v", id, have, prevAddrs))
	}
	return nil
}

// cmdStatus reports whether the daemon can serve ADD: reachable is ready.
func cmdStatus(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if _, err := c.client().List(context.Background()); err != nil {
		return types.NewError(codeUnavailable, "switchd daemon not available", err.Error())
	}
	return nil
}

// cmdGC removes the endpoints of this network that are not among the
// runtime's valid attachments, continuing past failures.
func cmdGC(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	cl := c.client()
	l, err := cl.List(context.Background())
	if err != nil {
		return cniError(err)
	}
	valid := map[string]bool{}
	for _, a := range c.ValidAttachments {
		valid[endpointapi.ContainerEndpointID(a.ContainerID, a.IfName)] = true
	}
	var errs []string
	for _, ep := range l.Endpoints {
		if ep.Kind != endpointapi.KindContainer || ep.Labels[NetworkLabel] != c.Name || valid[ep.ID] {
			continue
		}
		if err := cl.Del(context.Background(), ep.ID); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return types.NewError(types.ErrInternal, "remove stale endpoints", strings.Join(errs, "; "))
	}
	return nil
}

package platform

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// RouterSysctls are the kernel settings every switchd node runs with,
// whatever its role, written at start:
//   - ignore_routes_with_linkdown: a route whose only next hop is on a
//     link without carrier is not used (the default, 0, keeps forwarding
//     into a dead link until a routing protocol notices; nexthop groups
//     already skip such members, inline next hops do not).
//   - keep_addr_on_down: IPv6 addresses stay on a link that goes down, as
//     IPv4 addresses do; otherwise a link bounce flushes the configured
//     global addresses for good and the BGP sessions over them never come
//     back.
//   - fib_notify_on_flag_change: a switchdev driver's offload, trap and
//     offload-failed flags on a route are sent as a route notification
//     when they change, so fib's feed (and the AFT) shows them at once;
//     otherwise only a dump (the next resync) sees them.
//
// "all" changes every existing interface (IPv6) or is or-ed with each
// interface's own value (IPv4); "default" covers interfaces made later.
var RouterSysctls = map[string]string{
	"net/ipv4/conf/all/ignore_routes_with_linkdown":     "1",
	"net/ipv4/conf/default/ignore_routes_with_linkdown": "1",
	"net/ipv6/conf/all/ignore_routes_with_linkdown":     "1",
	"net/ipv6/conf/default/ignore_routes_with_linkdown": "1",
	"net/ipv6/conf/all/keep_addr_on_down":               "1",
	"net/ipv6/conf/default/keep_addr_on_down":           "1",
	"net/ipv4/fib_notify_on_flag_change":                "1",
	"net/ipv6/fib_notify_on_flag_change":                "1",
}

// SetSysctls writes settings (keys relative to /proc/sys, as in
// RouterSysctls) under root, normally "/", from the calling thread's
// namespace; tests pass a fake tree. Every setting is tried; the errors
// name the ones that failed.
func SetSysctls(root string, settings map[string]string) error {
	return pnl.WriteSysctlFiles(filepath.Join(root, "proc/sys"), sysctlList(settings))
}

// SetSysctlsIn writes settings in the namespace ns (nil: the calling
// thread's), as SetSysctls does under "/".
func SetSysctlsIn(ns *pnl.NS, settings map[string]string) error {
	return ns.WriteSysctls(sysctlList(settings)...)
}

// sysctlList orders settings by key, so they are written, and their
// errors reported, in the same order every time.
func sysctlList(settings map[string]string) []pnl.Sysctl {
	out := make([]pnl.Sysctl, 0, len(settings))
	for k, v := range settings {
		out = append(out, pnl.Sysctl{Path: k, Value: v})
	}
	slices.SortFunc(out, func(a, b pnl.Sysctl) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Multipath hash policies (fib.HashL3, fib.HashL4, fib.HashL3Inner).
var hashPolicySysctls = [2]string{"net/ipv4/fib_multipath_hash_policy", "net/ipv6/fib_multipath_hash_policy"}

// SetMultipathHashPolicy sets how the kernel spreads flows over the paths
// of an ECMP route, for IPv4 and IPv6, in the namespace ns (nil: the
// calling thread's): 0 hashes the addresses, 1 the 5-tuple, 2 the inner
// packet's addresses of tunnelled traffic.
func SetMultipathHashPolicy(ns *pnl.NS, policy int) error {
	if policy < 0 || policy > 2 {
		return fmt.Errorf("set multipath hash policy %d: not one of 0 (L3), 1 (L4), 2 (L3 inner)", policy)
	}
	v := strconv.Itoa(policy)
	if err := ns.WriteSysctls(pnl.Sysctl{Path: hashPolicySysctls[0], Value: v}, pnl.Sysctl{Path: hashPolicySysctls[1], Value: v}); err != nil {
		return fmt.Errorf("set multipath hash policy: %w", err)
	}
	return nil
}

// MultipathHashPolicy reads the IPv4 and IPv6 policies in ns.
func MultipathHashPolicy(ns *pnl.NS) (v4, v6 int, err error) {
	var out [2]int
	for i, p := range hashPolicySysctls {
		s, err := ns.ReadSysctl(p)
		if err != nil {
			return 0, 0, fmt.Errorf("read multipath hash policy: %w", err)
		}
		if out[i], err = strconv.Atoi(s); err != nil {
			return 0, 0, fmt.Errorf("read multipath hash policy %s: %w", p, err)
		}
	}
	return out[0], out[1], nil
}

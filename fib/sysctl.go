package fib

import (
	"fmt"
	"strconv"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Multipath hash policies of net.ipv{4,6}.fib_multipath_hash_policy.
const (
	HashL3      = 0 // source and destination address
	HashL4      = 1 // the 5-tuple: flows of one host pair spread over paths
	HashL3Inner = 2 // inner packet's addresses for tunnelled traffic
)

// DefaultHashPolicy is the policy switchd sets unless configured otherwise.
const DefaultHashPolicy = HashL4

var hashPolicySysctls = [2]string{"net/ipv4/fib_multipath_hash_policy", "net/ipv6/fib_multipath_hash_policy"}

// SetMultipathHashPolicy sets how the kernel spreads flows over the paths
// of an ECMP route, for IPv4 and IPv6, in the namespace ns (nil for the
// calling thread's): the sysctls are per namespace.
func SetMultipathHashPolicy(ns *pnl.NS, policy int) error {
	if policy < HashL3 || policy > HashL3Inner {
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

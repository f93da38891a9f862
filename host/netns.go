package host

import (
	"errors"
	"fmt"
	"os"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// openNetns opens a network namespace by path; a missing path or a file
// that is not a namespace is ErrNetnsMissing.
func openNetns(path string) (*pnl.NS, error) {
	h, err := pnl.OpenNS(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, pnl.ErrNotNamespace) {
		return nil, fmt.Errorf("open netns %s: %w", path, ErrNetnsMissing)
	}
	return h, err
}

// sysctl is one /proc/sys value (path relative to /proc/sys).
type sysctl struct{ path, value string }

func toPNL(vals []sysctl) []pnl.Sysctl {
	out := make([]pnl.Sysctl, len(vals))
	for i, s := range vals {
		out[i] = pnl.Sysctl{Path: s.path, Value: s.value}
	}
	return out
}

// writeSysctls writes the values inside ns, all on one thread switch.
func writeSysctls(ns *pnl.NS, vals []sysctl) error { return ns.WriteSysctls(toPNL(vals)...) }

// readSysctl reads one value inside ns.
func readSysctl(ns *pnl.NS, path string) (string, error) { return ns.ReadSysctl(path) }

// ifaceSysctls makes a host-side interface a point-to-point routed port:
//   - proxy_arp answers the workload's ARP for 169.254.1.1 (and anything
//     else routed elsewhere), proxy_delay 0 answers at once instead of after
//     up to 0.8 s;
//   - rp_filter 1 (strict) drops packets whose source is not routed back
//     out of this interface, so a workload can only send from its own
//     addresses;
//   - forwarding on in both families (proxy ARP needs IPv4 forwarding on the
//     interface), accept_ra off: the workload is not a router. (With IPv6
//     forwarding on, accept_ra 1 ignores RAs as 0 does; only 2 accepts
//     them. Container host sides, which inherit forwarding from the global
//     setting NewManager makes, keep the inherited 1: see
//     ipv6IfaceSysctls.)
func ifaceSysctls(ifname string) []sysctl {
	return []sysctl{
		{"net/ipv4/conf/" + ifname + "/forwarding", "1"},
		{"net/ipv4/conf/" + ifname + "/proxy_arp", "1"},
		{"net/ipv4/conf/" + ifname + "/rp_filter", "1"},
		{"net/ipv4/neigh/" + ifname + "/proxy_delay", "0"},
		{"net/ipv6/conf/" + ifname + "/forwarding", "1"},
		{"net/ipv6/conf/" + ifname + "/accept_ra", "0"},
	}
}

// globalForwarding turns the host into a router in both families.
var globalForwarding = []sysctl{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv6/conf/all/forwarding", "1"},
}

// ipv6IfaceSysctls are the per-interface values netlink cannot set (see
// ifaceSysctls). A new container host side needs them written only if it
// did not inherit IPv6 forwarding on and accept_ra below 2 (the echoed
// new link says so): reading and writing them cost 15 % of an Add, so
// they are read first and only what differs is written
// (NS.EnsureSysctls).
func ipv6IfaceSysctls(ifname string) []sysctl {
	return []sysctl{
		{"net/ipv6/conf/" + ifname + "/forwarding", "1"},
		{"net/ipv6/conf/" + ifname + "/accept_ra", "0"},
	}
}

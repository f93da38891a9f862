package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openNetns opens a network namespace by path; a missing path or a file
// that is not a namespace is ErrNetnsMissing.
func openNetns(path string) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return netns.None(), fmt.Errorf("open netns %s: %w", path, ErrNetnsMissing)
		}
		return netns.None(), fmt.Errorf("open netns %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		h.Close()
		return netns.None(), fmt.Errorf("open netns %s: %w: not a namespace file", path, ErrNetnsMissing)
	}
	return h, nil
}

// inNetns runs f on a locked OS thread switched into h. /proc/sys/net shows
// the network namespace of the task that opens it (TestSysctlFollowsThread
// checks), so this is how per-namespace sysctls are written. The thread
// returns to its namespace before it is unlocked; if it cannot, it stays
// locked and dies with the goroutine.
func inNetns(h netns.NsHandle, f func() error) error {
	return inNetnsSeq(func() error {
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		return f()
	})
}

// inNetnsSeq runs f on a locked OS thread that f may move between
// namespaces (netns.Set); afterwards the thread returns to the namespace
// it started in, or dies with the goroutine if it cannot.
func inNetnsSeq(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sysctl is one /proc/sys value.
type sysctl struct{ path, value string }

// writeSysctls writes the values inside h, all on one thread switch.
func writeSysctls(h netns.NsHandle, vals []sysctl) error {
	return inNetns(h, func() error {
		for _, s := range vals {
			p := filepath.Join("/proc/sys", s.path)
			if err := os.WriteFile(p, []byte(s.value), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", s.path, s.value, err)
			}
		}
		return nil
	})
}

// readSysctl reads one value inside h.
func readSysctl(h netns.NsHandle, path string) (string, error) {
	var v string
	err := inNetns(h, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", path))
		v = string(trimNL(b))
		return err
	})
	return v, err
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

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

// ensureSysctls reads each value and writes only those that differ:
// reading is cheap, while some writes are not (writing an IPv6
// forwarding flag takes the RTNL lock with trylock and restarts the
// syscall while it is busy, so concurrent Adds spun on it).
func ensureSysctls(vals []sysctl) error {
	var buf [32]byte
	for _, s := range vals {
		p := "/proc/sys/" + s.path
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", s.path, err)
		}
		n, err := unix.Read(fd, buf[:])
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", s.path, err)
		}
		if string(trimNL(buf[:max(n, 0)])) == s.value {
			continue
		}
		if err := os.WriteFile(p, []byte(s.value), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s.path, s.value, err)
		}
	}
	return nil
}

// ipv6IfaceSysctls are the per-interface values netlink cannot set (see
// ifaceSysctls). A new container host side needs them written only if it
// did not inherit IPv6 forwarding on and accept_ra below 2 (the echoed
// new link says so): reading and writing them cost 15 % of an Add.
func ipv6IfaceSysctls(ifname string) []sysctl {
	return []sysctl{
		{"net/ipv6/conf/" + ifname + "/forwarding", "1"},
		{"net/ipv6/conf/" + ifname + "/accept_ra", "0"},
	}
}

package fib

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/vishvananda/netns"
)

// Multipath hash policies of net.ipv{4,6}.fib_multipath_hash_policy.
const (
	HashL3      = 0 // source and destination address
	HashL4      = 1 // the 5-tuple: flows of one host pair spread over paths
	HashL3Inner = 2 // inner packet's addresses for tunnelled traffic
)

// DefaultHashPolicy is the policy switchd sets unless configured otherwise.
const DefaultHashPolicy = HashL4

// SetMultipathHashPolicy sets how the kernel spreads flows over the paths
// of an ECMP route, for IPv4 and IPv6, in the namespace ns (netns.None()
// for the calling thread's). The sysctls are per namespace, so the files
// are written from a thread inside it.
func SetMultipathHashPolicy(ns netns.NsHandle, policy int) error {
	if policy < HashL3 || policy > HashL3Inner {
		return fmt.Errorf("set multipath hash policy %d: not one of 0 (L3), 1 (L4), 2 (L3 inner)", policy)
	}
	return inNetNS(ns, func() error {
		var errs []error
		for _, f := range []string{"/proc/sys/net/ipv4/fib_multipath_hash_policy", "/proc/sys/net/ipv6/fib_multipath_hash_policy"} {
			if err := os.WriteFile(f, []byte(strconv.Itoa(policy)), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("set multipath hash policy: %w", err))
			}
		}
		return errors.Join(errs...)
	})
}

// MultipathHashPolicy reads the IPv4 and IPv6 policies in ns.
func MultipathHashPolicy(ns netns.NsHandle) (v4, v6 int, err error) {
	err = inNetNS(ns, func() error {
		for i, f := range []string{"/proc/sys/net/ipv4/fib_multipath_hash_policy", "/proc/sys/net/ipv6/fib_multipath_hash_policy"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("read multipath hash policy: %w", err)
			}
			n, err := strconv.Atoi(string(b[:len(b)-1]))
			if err != nil {
				return fmt.Errorf("read multipath hash policy %s: %w", f, err)
			}
			if i == 0 {
				v4 = n
			} else {
				v6 = n
			}
		}
		return nil
	})
	return v4, v6, err
}

// inNetNS runs f on a locked thread inside ns and moves the thread back.
func inNetNS(ns netns.NsHandle, f func() error) error {
	if !ns.IsOpen() {
		return f()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("enter netns: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // stuck in ns: let the thread die with the goroutine
		return errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
	}
	return ferr
}

package netlink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotNamespace is returned by OpenNS for a file that is not a network
// namespace.
var ErrNotNamespace = errors.New("not a network namespace")

// NS names a network namespace by an fd it owns. A nil *NS is the calling
// thread's namespace (normally the process's): Do runs f directly, Dial
// opens the socket where the caller is.
//
// An NS is safe for concurrent use; Close it when done (the namespace
// itself lives on as long as anything else holds it).
type NS struct {
	fd int
	id NSID
}

// NSID identifies a namespace (the device and inode of its nsfs file):
// two NS are the same namespace if their IDs are equal. Netlink port ids
// are unique per namespace only, so a port is named by (NSID, port).
type NSID struct{ Dev, Ino uint64 }

// OpenNS opens the namespace at path (a bind mount under /run/netns,
// /proc/PID/ns/net, ...). A missing path is an error that matches
// os.ErrNotExist, a file that is no namespace one that matches
// ErrNotNamespace.
func OpenNS(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	n, err := newNS(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	return n, nil
}

// CurrentNS opens the namespace of the calling thread.
func CurrentNS() (*NS, error) {
	n, err := OpenNS("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("current netns: %w", err)
	}
	return n, nil
}

// NSFromFd returns an NS of its own for the namespace fd names (the fd is
// duplicated; the caller keeps fd).
func NSFromFd(fd int) (*NS, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netns fd %d: dup: %w", fd, err)
	}
	n, err := newNS(dup)
	if err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("netns fd %d: %w", fd, err)
	}
	return n, nil
}

func newNS(fd int) (*NS, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return nil, err
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return nil, ErrNotNamespace
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	return &NS{fd: fd, id: NSID{Dev: st.Dev, Ino: st.Ino}}, nil
}

// Fd is the namespace fd, owned by n (for nftables.WithNetNSFd and the
// like); -1 for the nil NS.
func (n *NS) Fd() int {
	if n == nil {
		return -1
	}
	return n.fd
}

// ID identifies the namespace; for the nil NS, the calling thread's.
func (n *NS) ID() (NSID, error) {
	if n != nil {
		return n.id, nil
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return NSID{}, fmt.Errorf("identify netns: %w", err)
	}
	return NSID{Dev: st.Dev, Ino: st.Ino}, nil
}

// Equal reports whether n and o are the same namespace.
func (n *NS) Equal(o *NS) bool {
	a, err1 := n.ID()
	b, err2 := o.ID()
	return err1 == nil && err2 == nil && a == b
}

// Close releases the fd. Closing the nil NS or a closed one does nothing.
func (n *NS) Close() error {
	if n == nil || n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	if err != nil {
		return fmt.Errorf("close netns: %w", err)
	}
	return nil
}

// Do runs f on a locked OS thread switched into n, and switches the thread
// back before it is unlocked; if it cannot go back, the thread stays locked
// and dies with its goroutine, so no goroutine ever runs in the wrong
// namespace. Sockets f opens stay in n; /proc/sys/net shows the namespace
// of the thread that opens it, which is how sysctls are set per namespace.
// For the nil NS, f runs on the caller's goroutine.
func (n *NS) Do(f func() error) error {
	if n == nil {
		return f()
	}
	if n.fd < 0 {
		return errors.New("enter netns: closed")
	}
	return onThread(func() error {
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		return nil
	}, f)
}

// NewNS creates a network namespace, held by the returned NS only (name it
// by bind-mounting /proc/self/fd/FD somewhere, as sim/ns does). Its
// loopback is down.
func NewNS() (*NS, error) {
	var n *NS
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("create netns: %w", err)
		}
		return nil
	}, func() error {
		var err error
		n, err = CurrentNS()
		return err
	})
	return n, err
}

// onThread runs enter and then f on a new goroutine locked to its thread
// (the caller's thread never changes namespace), then returns the thread
// to the namespace it started in: the one place a thread leaves a
// namespace switchd made it enter.
func onThread(enter, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := enter(); err != nil {
			// setns and unshare change nothing when they fail.
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns: %w", err))
			return // still locked: the thread exits with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Sysctl is one /proc/sys value; Path is relative to /proc/sys
// ("net/ipv4/ip_forward").
type Sysctl struct{ Path, Value string }

// ReadSysctl reads one value in n, without the trailing newline.
func (n *NS) ReadSysctl(path string) (string, error) {
	var v string
	err := n.Do(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", path))
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", dotted(path), err)
		}
		v = strings.TrimRight(string(b), "\n ")
		return nil
	})
	return v, err
}

// WriteSysctls writes the values in n, all on one thread switch. Every
// value is tried; the error names each that failed.
func (n *NS) WriteSysctls(vals ...Sysctl) error {
	return n.Do(func() error { return WriteSysctlFiles("/proc/sys", vals) })
}

// EnsureSysctls reads each value in n and writes only those that differ:
// reading is cheap, while some writes are not (writing an IPv6 forwarding
// flag takes the RTNL lock with trylock and restarts the syscall while it
// is busy, so concurrent writers spin on it).
func (n *NS) EnsureSysctls(vals ...Sysctl) error {
	return n.Do(func() error {
		var buf [64]byte
		var errs []error
		for _, s := range vals {
			p := filepath.Join("/proc/sys", s.Path)
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("sysctl %s: %w", dotted(s.Path), err))
				continue
			}
			k, err := unix.Read(fd, buf[:])
			unix.Close(fd)
			if err != nil {
				errs = append(errs, fmt.Errorf("sysctl %s: %w", dotted(s.Path), err))
				continue
			}
			if strings.TrimRight(string(buf[:max(k, 0)]), "\n ") == s.Value {
				continue
			}
			if err := os.WriteFile(p, []byte(s.Value), 0); err != nil {
				errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", dotted(s.Path), s.Value, err))
			}
		}
		return errors.Join(errs...)
	})
}

// WriteSysctlFiles writes each value to dir/Path from the calling thread
// (dir is /proc/sys, or a fake tree in tests of callers that take a root
// path). Every value is tried; the error names each that failed.
func WriteSysctlFiles(dir string, vals []Sysctl) error {
	var errs []error
	for _, s := range vals {
		if err := os.WriteFile(filepath.Join(dir, s.Path), []byte(s.Value), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", dotted(s.Path), s.Value, err))
		}
	}
	return errors.Join(errs...)
}

// dotted names a sysctl in errors as sysctl(8) does: net.ipv4.ip_forward.
func dotted(path string) string { return strings.ReplaceAll(path, "/", ".") }

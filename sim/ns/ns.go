// Package ns creates and removes named network namespaces for the simulator
// and for tests. Names carry a per-run prefix so that everything a run made
// (also a crashed one) can be found again and removed.
package ns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Dir is where iproute2 keeps named namespaces; `ip netns` sees ours.
const Dir = "/run/netns"

// BasePrefix starts the name of every namespace switchd's tools create, so
// that `switchd sim down` can find leftovers of any run.
const BasePrefix = "swd"

var (
	runPrefixOnce sync.Once
	runPrefix     string
)

// RunPrefix is unique to this process: BasePrefix plus six hex digits. It is
// inherited through SWITCHD_RUN_PREFIX so a re-executed test keeps it.
func RunPrefix() string {
	runPrefixOnce.Do(func() {
		if p := os.Getenv("SWITCHD_RUN_PREFIX"); p != "" {
			runPrefix = p
			return
		}
		runPrefix = NewPrefix()
	})
	return runPrefix
}

// NewPrefix returns a fresh BasePrefix-based prefix.
func NewPrefix() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return BasePrefix + hex.EncodeToString(b[:])
}

// NS is a named network namespace. The namespace fd is a
// platform/netlink.NS (Net), through which it is entered (Do) and its
// sysctls are set.
type NS struct {
	Name string
	net  *pnl.NS
	nl   *netlink.Handle
}

// New creates the named namespace name, brings its loopback up and returns
// it. It fails if the name exists already.
func New(name string) (*NS, error) {
	if len(name) > 64 || strings.ContainsAny(name, "/ \t") || name == "" {
		return nil, fmt.Errorf("create netns %q: invalid name", name)
	}
	if _, err := os.Stat(filepath.Join(Dir, name)); err == nil {
		return nil, fmt.Errorf("create netns %q: already exists", name)
	}
	if err := sharedDir(); err != nil {
		return nil, fmt.Errorf("create netns %q: %w", name, err)
	}
	h, err := createNamed(name)
	if err != nil {
		return nil, fmt.Errorf("create netns %q: %w", name, err)
	}
	n := &NS{Name: name, net: h}
	if n.nl, err = netlink.NewHandleAt(n.NsHandle()); err != nil {
		n.Delete()
		return nil, fmt.Errorf("netlink handle in netns %q: %w", name, err)
	}
	lo, err := n.nl.LinkByName("lo")
	if err == nil {
		err = n.nl.LinkSetUp(lo)
	}
	if err != nil {
		n.Delete()
		return nil, fmt.Errorf("set lo up in netns %q: %w", name, err)
	}
	return n, nil
}

// Open returns an existing named namespace.
func Open(name string) (*NS, error) {
	h, err := pnl.OpenNS(filepath.Join(Dir, name))
	if err != nil {
		return nil, fmt.Errorf("open netns %q: %w", name, err)
	}
	return wrap(name, h)
}

// wrap makes an NS of an open namespace, with its netlink handle.
func wrap(name string, h *pnl.NS) (*NS, error) {
	nl, err := netlink.NewHandleAt(netns.NsHandle(h.Fd()))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in netns %q: %w", name, err)
	}
	return &NS{Name: name, net: h, nl: nl}, nil
}

var sharedOnce struct {
	sync.Once
	err error
}

// sharedDir makes Dir a shared mount point, as `ip netns add` does, so
// that a namespace named later is visible to processes already running in
// a mount namespace of their own (`ip netns exec` gives them one).
func sharedDir() error {
	sharedOnce.Do(func() {
		if err := os.MkdirAll(Dir, 0o755); err != nil {
			sharedOnce.err = err
			return
		}
		err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == unix.EINVAL { // not a mount point yet
			if err = unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			sharedOnce.err = fmt.Errorf("make %s a shared mount: %w", Dir, err)
		}
	})
	return sharedOnce.err
}

// createNamed makes a namespace and names it: a bind mount of it at
// Dir/name, as `ip netns add` makes.
func createNamed(name string) (*pnl.NS, error) {
	h, err := pnl.NewNS()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(Dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		h.Close()
		return nil, err
	}
	f.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", h.Fd()), path, "none", unix.MS_BIND, ""); err != nil {
		h.Close()
		os.Remove(path)
		return nil, fmt.Errorf("bind mount %s: %w", path, err)
	}
	return h, nil
}

// Handle is a netlink handle bound to the namespace.
func (n *NS) Handle() *netlink.Handle { return n.nl }

// Net is the namespace as platform/netlink names it (for netlink.Dial and
// the like); n owns it.
func (n *NS) Net() *pnl.NS { return n.net }

// Fd is the namespace file descriptor (for nftables.WithNetNSFd and the like).
func (n *NS) Fd() int { return n.net.Fd() }

// NsHandle is the namespace handle (for vishvananda/netlink).
func (n *NS) NsHandle() netns.NsHandle { return netns.NsHandle(n.net.Fd()) }

// Path is the bind-mount path of the namespace.
func (n *NS) Path() string { return filepath.Join(Dir, n.Name) }

// Command returns a command that runs argv inside the namespace (for the
// unnamed Current namespace: directly).
func (n *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	if n.Name == "" {
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// Run runs argv inside the namespace and returns its combined output; the
// error carries the output so failures explain themselves.
func (n *NS) Run(ctx context.Context, argv ...string) (string, error) {
	out, err := n.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %s: %w: %s", n.Name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs f on a thread switched into the namespace. Sockets f opens stay in
// the namespace after it returns.
func (n *NS) Do(f func() error) error {
	if err := n.net.Do(f); err != nil {
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	return nil
}

// Pids lists the processes running in the namespace.
func (n *NS) Pids() []int { return PidsIn(n.Name) }

// Close releases the handles but keeps the namespace.
func (n *NS) Close() {
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	n.net.Close()
}

// Delete releases the handles and removes the namespace name. The kernel
// frees the namespace (and its veth ends) once no process is left in it.
func (n *NS) Delete() error {
	n.Close()
	if n.Name == "" {
		return nil
	}
	path := filepath.Join(Dir, n.Name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("delete netns %s: %w", n.Name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", n.Name, err)
	}
	return nil
}

// List returns the names of the named namespaces that start with prefix.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// PidsIn lists the processes whose network namespace is the named one
// (as `ip netns pids` does: by comparing namespace inodes).
func PidsIn(name string) []int { return PidsInAny([]string{name}) }

// PidsInAny lists the processes whose network namespace is one of the
// named ones: PidsIn for many namespaces at once, /proc read once.
func PidsInAny(names []string) []int {
	want := map[[2]uint64]bool{}
	for _, name := range names {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(Dir, name), &st) == nil {
			want[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	var pids []int
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscanf(p.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", p.Name(), "ns", "net"), &st) == nil && want[[2]uint64{st.Dev, st.Ino}] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Current returns the calling thread's network namespace (normally the
// process's, or the private one ns.TestMain put the test in). It has no
// name; Delete on it only releases the handles.
func Current() (*NS, error) {
	h, err := pnl.CurrentNS()
	if err != nil {
		return nil, err
	}
	return wrap("", h)
}

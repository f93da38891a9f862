package host

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

var (
	hostLo4 = netip.MustParseAddr("10.255.0.1")
	hostLo6 = netip.MustParseAddr("fd00:ff::1")
	pool4   = Pool{Prefix: netip.MustParsePrefix("10.10.0.0/16")}
	pool6   = Pool{Prefix: netip.MustParsePrefix("fd00:10::/64")}
)

// fakeFIB stands in for the daemon's fib: it follows a Manager's route
// feed, keeps what it asks for and, when bound to a namespace, installs it
// there the way fib would (protocol 196, replace), so traffic tests see
// real host routes. It drains the feed whenever the test looks (get,
// advertised) and before every ping, so a test sees what the Manager
// published before it returned.
type fakeFIB struct {
	t      testing.TB
	mu     sync.Mutex
	m      *Manager
	routes map[fib.RouteKey]fib.Route
	adv    []netip.Prefix
	nl     *netlink.Handle
}

func newFakeFIB(t testing.TB, host *ns.NS) *fakeFIB {
	f := &fakeFIB{t: t, routes: map[fib.RouteKey]fib.Route{}}
	if host != nil {
		f.nl = host.Handle()
	}
	return f
}

// liveFakes are the fakes following a Manager, for ping to sync.
var liveFakes sync.Map // *fakeFIB → struct{}

// follow makes f take m's route feed until the test ends.
func (f *fakeFIB) follow(m *Manager) {
	f.mu.Lock()
	f.m = m
	f.mu.Unlock()
	liveFakes.Store(f, struct{}{})
	f.t.Cleanup(func() { liveFakes.Delete(f) })
}

// syncFakes makes every live fake take what its Manager published.
func syncFakes() {
	liveFakes.Range(func(f, _ any) bool {
		f.(*fakeFIB).sync()
		return true
	})
}

func (f *fakeFIB) sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		return
	}
	c := f.m.DrainRoutes()
	if c.OriginateChanged {
		f.adv = c.Originate
	}
	f.applyLocked(c.Set, c.Del)
}

func (f *fakeFIB) applyLocked(set []fib.Route, del []fib.RouteKey) {
	for _, k := range del {
		delete(f.routes, k)
		if f.nl != nil {
			r := &netlink.Route{Dst: prefixNet(k.Dst), Table: k.Table, Protocol: fib.Protocol}
			if err := f.nl.RouteDel(r); err != nil && !isNotFound(err) {
				f.t.Errorf("fake fib: delete %v: %v", k, err)
			}
		}
	}
	for _, r := range set {
		f.routes[r.Key] = r
		if f.nl != nil {
			nr := &netlink.Route{Dst: prefixNet(r.Key.Dst), Table: r.Key.Table, Protocol: fib.Protocol}
			if r.Type == fib.Blackhole {
				nr.Type = unix.RTN_BLACKHOLE
			} else {
				nr.LinkIndex = r.NextHops[0].Ifindex
				nr.Scope = netlink.SCOPE_LINK
			}
			if err := f.nl.RouteReplace(nr); err != nil {
				f.t.Errorf("fake fib: replace %v: %v", r, err)
			}
		}
	}
}

func (f *fakeFIB) get(dst string) (fib.Route, bool) {
	f.sync()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fib.Route{Key: fib.RouteKey{Dst: netip.MustParsePrefix(dst)}}
	k.Normalize() // as fib keys it: IPv6 metric 0 is 1024
	r, ok := f.routes[k.Key]
	return r, ok
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// newHost makes the host namespace with addresses on lo to ping.
func newHost(t testing.TB) *ns.NS {
	h := ns.NewT(t, "host")
	for _, a := range []netip.Addr{hostLo4, hostLo6} {
		if err := h.AddAddr("lo", hostPrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func newManager(t testing.TB, host *ns.NS, dir string, f *fakeFIB, pools ...Pool) *Manager {
	t.Helper()
	if len(pools) == 0 {
		pools = []Pool{pool4, pool6}
	}
	return newManagerOpts(t, host, f, Options{StateDir: dir, Pools: pools})
}

// newManagerOpts starts a Manager in host reporting to f; it is closed at
// the end of the test.
func newManagerOpts(t testing.TB, host *ns.NS, f *fakeFIB, opts Options) *Manager {
	t.Helper()
	opts.HostNetns = host.Path()
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	f.follow(m)
	return m
}

// advertised is what the Manager last told the daemon to originate.
func (f *fakeFIB) advertised() []netip.Prefix {
	f.sync()
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.adv)
}

func records(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("record line %q: %v", line, err)
		}
		if l.Put != nil {
			live[l.Put.ID] = true
		} else {
			delete(live, l.Del)
		}
	}
	return slices.Sorted(maps.Keys(live))
}

// ourVeths lists host-side veths named like ours.
func ourVeths(t testing.TB, host *ns.NS) []string {
	t.Helper()
	links, err := host.Handle().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "swc") {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

func ping(ctx context.Context, n *ns.NS, args ...string) error {
	syncFakes()
	_, err := n.Run(ctx, append([]string{"ping", "-n", "-c1", "-W2"}, args...)...)
	return err
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/platform"
	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// checkConfiguredAddresses: on every switchd node of f, the addresses the
// simulator's plan gives its interfaces (sim.Fabric.Addresses) are exactly
// the addresses switchd owns (tagged with platform.AddrProtocol): the
// simulator assigns none of them, switchd applies them from /interfaces.
func checkConfiguredAddresses(t *testing.T, f *sim.Fabric) {
	t.Helper()
	for _, n := range f.Nodes() {
		if n.Kind != sim.Switchd {
			continue
		}
		owned, err := platform.OwnedAddrs(context.Background(), f.Namespace(n.Name).Net())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]netip.Prefix{}
		for _, ia := range f.Addresses(n) {
			want[ia.Name] = ia.Addrs
		}
		for name, ps := range want {
			got := slices.Clone(owned[name])
			slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			if !slices.Equal(got, ps) {
				t.Errorf("%s: %s carries %v as switchd's, want %v from its config", n.Name, name, owned[name], ps)
			}
		}
		for name := range owned {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: switchd owns %v on %s, which its config does not name", n.Name, owned[name], name)
			}
		}
	}
}

// withIfaces sets the document's /interfaces: interface → MTU (0: none)
// and addresses of subinterface 0.
func withIfaces(ifs map[string]ifaceSpec) func(doc map[string]any) {
	return func(doc map[string]any) {
		var list []any
		for name, s := range ifs {
			c := map[string]any{"name": name}
			if s.mtu != 0 {
				c["mtu"] = s.mtu
			}
			sub := map[string]any{"index": 0, "config": map[string]any{"index": 0}}
			for _, a := range s.addrs {
				p := netip.MustParsePrefix(a)
				fam := "openconfig-if-ip:ipv4"
				if p.Addr().Is6() {
					fam = "openconfig-if-ip:ipv6"
				}
				f, _ := sub[fam].(map[string]any)
				if f == nil {
					f = map[string]any{"addresses": map[string]any{"address": []any{}}}
					sub[fam] = f
				}
				as := f["addresses"].(map[string]any)
				as["address"] = append(as["address"].([]any), map[string]any{"ip": p.Addr().String(),
					"config": map[string]any{"ip": p.Addr().String(), "prefix-length": p.Bits()}})
			}
			list = append(list, map[string]any{"name": name, "config": c,
				"subinterfaces": map[string]any{"subinterface": []any{sub}}})
		}
		doc["openconfig-interfaces:interfaces"] = map[string]any{"interface": list}
	}
}

type ifaceSpec struct {
	mtu   int
	addrs []string
}

// addrNotes counts a namespace's address notifications.
type addrNotes struct {
	mu sync.Mutex
	n  int
	m  *pnl.Monitor
}

func countAddrNotes(t *testing.T, n *ns.NS) *addrNotes {
	m, err := pnl.NewMonitor(n.Net())
	if err != nil {
		t.Fatal(err)
	}
	a := &addrNotes{m: m}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m.Receive(func(ev pnl.Event) {
			// The kernel's link-local addresses come with DAD, in
			// their own time.
			if (ev.Kind == pnl.AddrNew || ev.Kind == pnl.AddrDel) && !ev.Prefix.Addr().IsLinkLocalUnicast() {
				a.mu.Lock()
				a.n++
				a.mu.Unlock()
			}
		}) == nil {
		}
	}()
	t.Cleanup(func() { m.Close(); <-done })
	return a
}

func (a *addrNotes) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// TestInterfacesDaemonPrivileged runs the daemon on a namespace with a
// veth: the config's addresses and MTU appear (tagged as switchd's); a
// reload with a bad /interfaces is refused with the path in the log and
// changes nothing; a good reload moves an address, drops lo's, leaves the
// address added by hand; a restart of the daemon adopts its addresses
// without one address notification.
func TestInterfacesDaemonPrivileged(t *testing.T) {
	n, peer := ns.NewT(t, "ifd"), ns.NewT(t, "ifdp")
	if err := ns.Veth(n, "e1", peer, "p1"); err != nil {
		t.Fatal(err)
	}
	hand := netip.MustParsePrefix("192.0.2.1/24")
	if err := n.AddAddr("e1", hand); err != nil {
		t.Fatal(err)
	}
	bin := simtest.SwitchdBinary(t)
	dir := t.TempDir()
	good := map[string]ifaceSpec{"e1": {mtu: 9000, addrs: []string{"10.77.0.0/31", "fd77::/127"}}, "lo": {addrs: []string{"10.77.255.1/32"}}}
	cfg := writeBadConfig(t, dir, withIfaces(good))
	args := []string{"run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"), "--state-dir", filepath.Join(dir, "state")}
	d := startSwitchd(t, n, bin, args...)
	owned := func(want map[string][]string) func() error {
		return func() error {
			if err := d.alive(); err != nil {
				t.Fatal(err)
			}
			got, err := platform.OwnedAddrs(context.Background(), n.Net())
			if err != nil {
				return err
			}
			w := map[string][]netip.Prefix{}
			for k, as := range want {
				for _, a := range as {
					w[k] = append(w[k], netip.MustParsePrefix(a))
				}
			}
			for k := range got {
				slices.SortFunc(got[k], func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			}
			if fmt.Sprint(got) != fmt.Sprint(w) {
				return fmt.Errorf("switchd's addresses %v, want %v", got, w)
			}
			return nil
		}
	}
	mtu := func() int {
		out, err := n.Run(t.Context(), "cat", "/sys/class/net/e1/mtu")
		if err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.Atoi(strings.TrimSpace(out))
		return v
	}
	first := map[string][]string{"e1": {"10.77.0.0/31", "fd77::/127"}, "lo": {"10.77.255.1/32"}}
	waitFor(t, 30*time.Second, "the config's addresses", owned(first))
	if m := mtu(); m != 9000 {
		t.Errorf("e1's MTU %d, want 9000", m)
	}

	reload := func() {
		t.Helper()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// Bad: an MTU below 68 beside a new address; refused, nothing applied.
	writeBadConfig(t, dir, withIfaces(map[string]ifaceSpec{"e1": {mtu: 10, addrs: []string{"10.78.0.0/31"}}}))
	reload()
	const path = "/interfaces/interface[name=e1]/config/mtu:"
	waitFor(t, 30*time.Second, "the refusal in the log", func() error {
		if !strings.Contains(d.logs.String(), path) {
			return fmt.Errorf("no %s in the log", path)
		}
		return nil
	})
	if err := owned(first)(); err != nil {
		t.Errorf("after a refused reload: %v", err)
	}
	if m := mtu(); m != 9000 {
		t.Errorf("after a refused reload: e1's MTU %d, want 9000", m)
	}

	// Good: 10.77.0.0/31 becomes 10.78.0.0/31, lo leaves the config.
	writeBadConfig(t, dir, withIfaces(map[string]ifaceSpec{"e1": {mtu: 9000, addrs: []string{"10.78.0.0/31", "fd77::/127"}}}))
	reload()
	second := map[string][]string{"e1": {"10.78.0.0/31", "fd77::/127"}}
	waitFor(t, 30*time.Second, "the reloaded addresses", owned(second))
	if out, _ := n.Run(t.Context(), "ip", "-4", "address", "show", "dev", "e1"); !strings.Contains(out, hand.String()) {
		t.Errorf("the address added by hand is gone:\n%s", out)
	}

	// Restart: the new daemon adopts; no address is removed or added.
	notes := countAddrNotes(t, n)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	d.exited <- nil // the cleanup of the first start waits for it
	d = startSwitchd(t, n, bin, args...)
	// Its API serves once start has applied the interfaces; the process
	// id tells it from a socket the old one left.
	waitFor(t, 30*time.Second, "the restarted daemon reports its interfaces", func() error {
		if err := d.alive(); err != nil {
			t.Fatal(err)
		}
		st, err := apiclient.GetStatus(t.Context(), filepath.Join(dir, "switchd.sock"))
		if err != nil {
			return err
		}
		if st.Interfaces == nil || st.Interfaces.Configured != 1 {
			return fmt.Errorf("status interfaces %+v, want 1 configured", st.Interfaces)
		}
		return nil
	})
	if err := owned(second)(); err != nil {
		t.Errorf("after a restart: %v", err)
	}
	if c := notes.count(); c != 0 {
		t.Errorf("restart: %d address notifications, want none (adopted)", c)
	}
}

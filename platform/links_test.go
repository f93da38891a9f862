package platform

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// TestLinkMonitorCarrierPrivileged: a veth set down on the far side loses
// carrier on ours, and the event carries our connected prefixes, the IPv6
// one included even though setting our own end down flushes it.
func TestLinkMonitorCarrierPrivileged(t *testing.T) {
	ns.Privileged(t)
	a, b := ns.NewT(t, "lma"), ns.NewT(t, "lmb")
	if err := ns.Veth(a, "toB", b, "toA"); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/31"), netip.MustParsePrefix("fd09::/127")}
	for _, p := range want {
		if err := a.AddAddr("toB", p); err != nil {
			t.Fatal(err)
		}
	}
	m, err := NewLinkMonitor(a.Net())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	next := func(t *testing.T) CarrierEvent {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case <-m.Kick():
				evs, err := m.Drain()
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs {
					if ev.Name == "toC" && !ev.Carrier {
						t.Errorf("carrier loss %+v for a link made after the monitor started", ev)
					}
					if ev.Name == "toB" {
						return ev
					}
				}
			case <-deadline:
				t.Fatal("no carrier event for toB within 5s")
			}
		}
	}
	hasAll := func(t *testing.T, ev CarrierEvent) {
		t.Helper()
		for _, p := range want {
			if !slices.Contains(ev.Prefixes, p) {
				t.Errorf("event %+v lacks connected prefix %v", ev, p)
			}
		}
	}

	// A link made now (a workload's veth) is no carrier loss: first
	// sight of a link without carrier is no event.
	c := ns.NewT(t, "lmc")
	if err := ns.Veth(a, "toC", c, "toA"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(t.Context(), "ip", "link", "set", "toA", "up"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(t.Context(), "ip", "link", "set", "toC", "up"); err != nil {
		t.Fatal(err)
	}

	// The far end goes down: our end stays admin up, without carrier.
	if _, err := b.Run(t.Context(), "ip", "link", "set", "toA", "down"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t); ev.Carrier {
		t.Fatalf("far end down: event %+v, want carrier lost", ev)
	} else {
		hasAll(t, ev)
	}
	if _, err := b.Run(t.Context(), "ip", "link", "set", "toA", "up"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t); !ev.Carrier {
		t.Fatalf("far end up: event %+v, want carrier back", ev)
	}

	// Our own end down: without keep_addr_on_down the kernel flushes the
	// IPv6 address, the event still names it.
	if err := a.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/toB/keep_addr_on_down", []byte("0"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(t.Context(), "ip", "link", "set", "toB", "down"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t); ev.Carrier {
		t.Fatalf("own end down: event %+v, want carrier lost", ev)
	} else {
		hasAll(t, ev)
	}
}

// TestSetSysctlsFakeTree writes under a root path and names what failed.
func TestSetSysctlsFakeTree(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "proc/sys/net/ipv6/conf/all")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := SetSysctls(root, map[string]string{
		"net/ipv6/conf/all/keep_addr_on_down":    "1",
		"net/ipv6/conf/nosuch/keep_addr_on_down": "1",
	})
	if b, rerr := os.ReadFile(filepath.Join(dir, "keep_addr_on_down")); rerr != nil || string(b) != "1" {
		t.Errorf("all/keep_addr_on_down = %q, %v; want 1", b, rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "net.ipv6.conf.nosuch.keep_addr_on_down") {
		t.Errorf("error %v does not name the missing setting", err)
	}
}

// TestSetSysctlsInPrivileged writes the router settings in a namespace;
// the test's own namespace keeps its values.
func TestSetSysctlsInPrivileged(t *testing.T) {
	a := ns.NewT(t, "sysctl")
	const k = "net/ipv6/conf/default/keep_addr_on_down"
	before, err := (*pnl.NS)(nil).ReadSysctl(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetSysctlsIn(a.Net(), RouterSysctls); err != nil {
		t.Fatal(err)
	}
	for k, want := range RouterSysctls {
		if v, err := a.Net().ReadSysctl(k); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %q", k, v, err, want)
		}
	}
	if v, _ := (*pnl.NS)(nil).ReadSysctl(k); v != before {
		t.Errorf("test namespace: %s = %q, want %q (unchanged)", k, v, before)
	}
}

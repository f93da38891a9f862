package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

// hostConfig is examples/host.json with its state kept in dir and, if
// withVM is false, without the configured VM.
func hostConfig(t *testing.T, dir string, withVM bool) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/host.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	sd := doc["switchd:switchd"].(map[string]any)
	sd["config"].(map[string]any)["state-dir"] = dir
	if !withVM {
		delete(sd, "endpoints")
	}
	out, _ := json.Marshal(doc)
	return out
}

// TestConfiguredVMPrivileged runs the daemon in this test's private
// namespace with examples/host.json: the configured VM's tap is adopted,
// its address comes from the configured pool, its host route and the
// block's blackhole reach the kernel as switchd's, and removing the VM
// from the config (SIGHUP) undoes it.
func TestConfiguredVMPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	addTap(t, "tap-vm1")
	dir := t.TempDir()
	cfg, sock := runDaemon(t, dir, hostConfig(t, dir, true))
	ctx := context.Background()
	c := &endpointapi.Client{Socket: sock, Timeout: 5 * time.Second}
	vm := waitVM(t, c)
	if vm.HostIface != "tap-vm1" || vm.Labels["app"] != "web" || !netip.MustParsePrefix("10.10.1.0/24").Contains(vm.IPv4) {
		t.Fatalf("vm1 endpoint %+v, want tap-vm1, label app=web and an address from 10.10.1.0/24", vm)
	}
	// The config's ECMP hash policy (default L4) is the namespace's.
	for _, f := range []string{"/proc/sys/net/ipv4/fib_multipath_hash_policy", "/proc/sys/net/ipv6/fib_multipath_hash_policy"} {
		if b, err := os.ReadFile(f); err != nil || strings.TrimSpace(string(b)) != "1" {
			t.Errorf("%s = %q (%v), want 1 (L4)", f, b, err)
		}
	}
	block := netip.PrefixFrom(vm.IPv4, 26).Masked()
	waitFor(t, "vm1's host route and its block's blackhole in the kernel", func() error {
		if r := ownRoute(t, netip.PrefixFrom(vm.IPv4, 32)); r == nil || r.LinkIndex != linkIndex(t, "tap-vm1") {
			return fmt.Errorf("host route to %v: %+v", vm.IPv4, r)
		}
		if r := ownRoute(t, block); r == nil || r.Type != 6 /* blackhole */ {
			return fmt.Errorf("blackhole for %v: %+v", block, r)
		}
		return nil
	})
	// The status counts every route switchd has in the kernel, the
	// workloads' included.
	waitFor(t, "the status route count equal to switchd's kernel routes", func() error {
		st, err := apiclient.GetStatus(ctx, sock)
		if err != nil {
			return err
		}
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return err
		}
		if st.FIB.Routes != len(rs) || !st.FIB.InSync {
			return fmt.Errorf("status: %d routes, in sync %v; kernel: %d routes of protocol %d", st.FIB.Routes, st.FIB.InSync, len(rs), fib.Protocol)
		}
		return nil
	})

	if err := os.WriteFile(cfg, hostConfig(t, dir, false), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "vm1 released after the reload", func() error {
		if r := ownRoute(t, netip.PrefixFrom(vm.IPv4, 32)); r != nil {
			return fmt.Errorf("host route to %v still there", vm.IPv4)
		}
		l, err := c.List(ctx)
		if err != nil {
			return err
		}
		if len(l.Endpoints) != 0 {
			return fmt.Errorf("endpoints %v", l.Endpoints)
		}
		return nil
	})
	if _, err := netlink.LinkByName("tap-vm1"); err != nil {
		t.Errorf("the tap is the hypervisor's; switchd removed it: %v", err)
	}
}

// addTap makes a tap, as libvirt does for a VM, until the test ends.
func addTap(t *testing.T, name string) {
	t.Helper()
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP}
	if err := netlink.LinkAdd(tap); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(tap) })
}

// runDaemon writes config into dir and runs the daemon on it until the
// test ends; it returns the config file's path and the API socket.
func runDaemon(t *testing.T, dir string, config []byte) (cfg, sock string) {
	t.Helper()
	cfg = filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, config, 0o644); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "switchd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfg, Socket: sock, StateDir: dir,
			Logger: slog.New(slog.NewTextHandler(testLogOut(), nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return cfg, sock
}

// waitVM waits until the daemon has adopted the configured VM vm1.
func waitVM(t *testing.T, c *endpointapi.Client) host.Endpoint {
	t.Helper()
	var vm host.Endpoint
	waitFor(t, "the daemon adopts vm1's tap", func() error {
		l, err := c.List(context.Background())
		if err != nil {
			return err
		}
		for _, e := range l.Endpoints {
			if e.ID == host.VMEndpointID("vm1") {
				vm = e
				return nil
			}
		}
		return fmt.Errorf("endpoints %v", l.Endpoints)
	})
	return vm
}

func ownRoute(t *testing.T, p netip.Prefix) *netlink.Route {
	t.Helper()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst != nil && r.Dst.String() == p.String() {
			return &r
		}
	}
	return nil
}

func linkIndex(t *testing.T, name string) int {
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testLogOut() io.Writer {
	if os.Getenv("SWITCHD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

package host

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
)

// TestRestartReconcilePrivileged: a new Manager on the same state keeps
// endpoints whose interface exists, releases those whose interface vanished
// and removes veths of ours that have no record.
func TestRestartReconcilePrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl1, wl2 := ns.NewT(t, "wl1"), ns.NewT(t, "wl2")
	dir := t.TempDir()
	m1, err := NewManager(Options{StateDir: dir, Pools: []Pool{pool4, pool6}, HostNetns: host.Path()})
	if err != nil {
		t.Fatal(err)
	}
	f1 := newFakeFIB(t, host)
	f1.follow(m1)
	r1, err := m1.AddContainer(ctx, ContainerRequest{ContainerID: "c1", Netns: wl1.Path()})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := m1.AddContainer(ctx, ContainerRequest{ContainerID: "c2", Netns: wl2.Path()})
	if err != nil {
		t.Fatal(err)
	}
	// A second Manager on a locked directory is refused.
	if _, err := NewManager(Options{StateDir: dir, Pools: []Pool{pool4}, HostNetns: host.Path()}); err == nil {
		t.Errorf("second manager on the same state directory started")
	}
	f1.sync() // m1's routes are in the kernel, as the daemon would have put them by now
	m1.Close()

	// While switchd is down: c2's veth disappears, a stray veth appears.
	hh := host.Handle()
	if l, err := hh.LinkByName(r2.Endpoint.HostIface); err != nil {
		t.Fatal(err)
	} else if err := hh.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "swc0123456789ab"}, PeerName: "strayb"}); err != nil {
		t.Fatal(err)
	}

	f := newFakeFIB(t, host)
	m2 := newManager(t, host, dir, f)
	if eps := m2.List(); len(eps) != 1 || !slices.Equal(eps[0].Addrs(), r1.Endpoint.Addrs()) {
		t.Fatalf("after restart: endpoints %+v, want c1 only with %v", eps, r1.Endpoint.Addrs())
	}
	if v := ourVeths(t, host); !slices.Equal(v, []string{r1.Endpoint.HostIface}) {
		t.Errorf("veths after restart %v, want only %s", v, r1.Endpoint.HostIface)
	}
	if r := records(t, dir); len(r) != 1 {
		t.Errorf("records after restart %v, want c1's only", r)
	}
	if _, ok := f.get("10.10.0.0/32"); !ok {
		t.Errorf("c1's host route not republished at start")
	}
	if _, ok := f.get("10.10.0.1/32"); ok {
		t.Errorf("c2's host route published though its veth is gone")
	}
	if err := m2.Check(ctx, r1.Endpoint.ID); err != nil {
		t.Error(err)
	}
	if err := ping(ctx, wl1, hostLo4.String()); err != nil {
		t.Error(err)
	}
	// c2's address is free again, c1's is not handed out twice.
	wl3 := ns.NewT(t, "wl3")
	r3, err := m2.AddContainer(ctx, ContainerRequest{ContainerID: "c3", Netns: wl3.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if r3.Endpoint.IPv4 != r2.Endpoint.IPv4 {
		t.Errorf("c3 got %v, want c2's released %v", r3.Endpoint.IPv4, r2.Endpoint.IPv4)
	}
}

const crashEnv = "SWITCHD_HOST_CRASH"

// TestCrashChildPrivileged is not a test on its own: TestCrashRecovery runs
// it in a child process that dies at a stage of AddContainer.
func TestCrashChildPrivileged(t *testing.T) {
	stage := os.Getenv(crashEnv)
	if stage == "" {
		t.Skip("helper process of TestCrashRecoveryPrivileged")
	}
	testHook = func(s string) {
		if s == stage {
			os.Exit(3)
		}
	}
	m, err := NewManager(Options{StateDir: os.Getenv(crashEnv + "_DIR"), Pools: []Pool{pool4, pool6}, HostNetns: os.Getenv(crashEnv + "_HOST")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.AddContainer(context.Background(), ContainerRequest{ContainerID: "crash", Netns: os.Getenv(crashEnv + "_NETNS")})
	t.Fatalf("add returned (%v) instead of dying at %s", err, stage)
}

// TestCrashRecoveryPrivileged kills a process in the middle of
// AddContainer and checks that a restarted Manager neither leaks nor hands
// out twice the address it had recorded.
func TestCrashRecoveryPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	wl0, wl := ns.NewT(t, "wl0"), ns.NewT(t, "wlcrash")
	dir := t.TempDir()
	m0, err := NewManager(Options{StateDir: dir, Pools: []Pool{pool4, pool6}, HostNetns: host.Path()})
	if err != nil {
		t.Fatal(err)
	}
	r0, err := m0.AddContainer(ctx, ContainerRequest{ContainerID: "c0", Netns: wl0.Path()})
	if err != nil {
		t.Fatal(err)
	}
	m0.Close()

	crash := func(stage string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChildPrivileged$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+stage, crashEnv+"_DIR="+dir, crashEnv+"_HOST="+host.Path(), crashEnv+"_NETNS="+wl.Path())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("child crashing at %s: %v\n%s", stage, err, out)
		}
	}

	// Died after the record, before the veth: the address is released.
	crash("recorded")
	if r := records(t, dir); len(r) != 2 {
		t.Fatalf("records after crash %v, want c0's and the crashed one's", r)
	}
	m1, err := NewManager(Options{StateDir: dir, Pools: []Pool{pool4, pool6}, HostNetns: host.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if eps := m1.List(); len(eps) != 1 || eps[0].ID != "c0/eth0" {
		t.Errorf("after crash before the veth: endpoints %v, want c0 only", eps)
	}
	if len(m1.ipam.owner) != 2 || len(records(t, dir)) != 1 {
		t.Errorf("after crash before the veth: allocations %v, records %v; want c0's two addresses only", m1.ipam.owner, records(t, dir))
	}
	m1.Close()

	// Died after the veth was set up, before routes were published: the
	// record is the truth, the endpoint stays and works.
	crash("configured")
	f := newFakeFIB(t, host)
	m2 := newManager(t, host, dir, f)
	ep, ok := m2.Get("crash/eth0")
	if !ok {
		t.Fatalf("after crash with the veth up: endpoint lost; have %v", m2.List())
	}
	if ep.IPv4 == r0.Endpoint.IPv4 || ep.IPv6 == r0.Endpoint.IPv6 {
		t.Errorf("crashed endpoint has c0's address: %v vs %v", ep.Addrs(), r0.Endpoint.Addrs())
	}
	if err := m2.Check(ctx, ep.ID); err != nil {
		t.Error(err)
	}
	if _, ok := f.get(hostPrefix(ep.IPv4).String()); !ok {
		t.Errorf("route of the recovered endpoint not published")
	}
	if err := ping(ctx, wl, hostLo4.String()); err != nil {
		t.Error(err)
	}
	if err := ping(ctx, wl, hostLo6.String()); err != nil {
		t.Error(err)
	}
}

// TestVMTapAdoptionPrivileged: a tap made by someone else gets addresses,
// routes and the gateway, and keeps existing after Del.
func TestVMTapAdoptionPrivileged(t *testing.T) {
	ctx := context.Background()
	host := newHost(t)
	if err := host.Do(func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tapvm1"}, Mode: netlink.TUNTAP_MODE_TAP})
	}); err != nil {
		t.Fatal(err)
	}
	tap, err := host.Handle().LinkByName("tapvm1")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeFIB(t, host)
	m := newManagerOpts(t, host, f, Options{StateDir: t.TempDir(), Pools: []Pool{pool4, pool6},
		StaticPrefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	static := netip.MustParseAddr("198.51.100.7") // outside every pool, in a static prefix
	req := VMRequest{Name: "vm1", Tap: "tapvm1", MAC: mac, IPv4: static}
	res, err := m.AdoptVM(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	ep := res.Endpoint
	if ep.ID != "vm:vm1" || ep.Kind != KindVM || ep.IPv4 != static || !ep.IPv6.IsValid() {
		t.Fatalf("endpoint %+v", ep)
	}
	for _, s := range ifaceSysctls("tapvm1") {
		if v, _ := readSysctl(host.Net(), s.path); v != s.value {
			t.Errorf("%s = %q, want %s", s.path, v, s.value)
		}
	}
	out, _ := host.Run(ctx, "ip", "-6", "addr", "show", "dev", "tapvm1")
	if !contains(out, "fe80::1/64") {
		t.Errorf("tap lacks the fe80::1 gateway: %s", out)
	}
	out, _ = host.Run(ctx, "ip", "neigh", "show", "dev", "tapvm1")
	if !contains(out, "198.51.100.7 lladdr 52:54:00:12:34:56 PERMANENT") {
		t.Errorf("no static neighbour for the VM: %q", out)
	}
	if r, ok := f.get("198.51.100.7/32"); !ok || r.NextHops[0].Ifindex != tap.Attrs().Index {
		t.Errorf("host route %v (%v), want via tap ifindex %d", r, ok, tap.Attrs().Index)
	}
	if !slices.Equal(m.Outside(), []netip.Addr{static}) || !slices.Contains(f.adv, netip.MustParsePrefix("198.51.100.7/32")) {
		t.Errorf("outside %v, advertised %v: want 198.51.100.7(/32)", m.Outside(), f.adv)
	}
	if err := m.Check(ctx, ep.ID); err != nil {
		t.Error(err)
	}
	if again, err := m.AdoptVM(ctx, req); err != nil || again.Endpoint.IPv6 != ep.IPv6 {
		t.Errorf("adopt again: %+v %v", again, err)
	}
	if _, err := m.AdoptVM(ctx, VMRequest{Name: "vm2", Tap: "tapvm1"}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("adopting a tap of another VM: %v, want ErrInvalidRequest", err)
	}
	if _, err := m.AdoptVM(ctx, VMRequest{Name: "vm3", Tap: "tapnone"}); !errors.Is(err, ErrInterfaceMissing) {
		t.Errorf("adopting a missing tap: %v, want ErrInterfaceMissing", err)
	}

	if err := m.Del(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Handle().LinkByName("tapvm1"); err != nil {
		t.Errorf("tap gone after Del: %v (it is the hypervisor's)", err)
	}
	out, _ = host.Run(ctx, "ip", "addr", "show", "dev", "tapvm1")
	if contains(out, "fe80::1/64") {
		t.Errorf("fe80::1 left on the tap after Del: %s", out)
	}
	if out, _ = host.Run(ctx, "ip", "neigh", "show", "dev", "tapvm1", "nud", "permanent"); out != "" {
		t.Errorf("static neighbours left after Del: %q", out)
	}
	if _, ok := f.get("198.51.100.7/32"); ok || len(m.Outside()) != 0 {
		t.Errorf("route or outside address left after Del")
	}
}

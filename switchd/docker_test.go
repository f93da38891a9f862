package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/host/docker"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/config/configtest"
)

// dockerConfig is a host's config with IPAM pools: the Docker networks'
// (the first of each family) and a two-address one for exhaustion.
func dockerConfig(t testing.TB) []byte {
	var doc map[string]any
	if err := json.Unmarshal(configtest.BGP{ASN: 65001, RouterID: "10.0.0.1"}.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	var pools []any
	for _, p := range []string{"10.77.0.0/24", "fd00:77::/64", "10.78.0.0/31"} {
		pools = append(pools, map[string]any{"prefix": p, "config": map[string]any{"prefix": p}})
	}
	doc["switchd:switchd"] = map[string]any{"ipam": map[string]any{"pools": map[string]any{"pool": pools}}}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDockerPrivileged runs a real dockerd beside a switchd serving the
// Docker driver, in a host namespace of the test's own: `docker network
// create -d switchd --ipam-driver switchd`, containers on it reach each
// other over IPv4 and IPv6 while one on another switchd network cannot
// reach them (the networks' policies), a switchd restart loses no ping at
// 10 ms and the driver carries on, `docker rm` takes the veth, routes and
// set membership away, and an exhausted pool fails `docker run` with
// switchd's message and leaves nothing behind.
func TestDockerPrivileged(t *testing.T) {
	h := newDockerHost(t)
	n, d, api, args, bin, sw := h.n, h.d, h.api, h.args, h.bin, h.sw
	ctx := t.Context()
	serving := h.serving
	d.must("network", "create", "-d", docker.Name, "--ipam-driver", docker.Name, "--ipv6", "net1")
	d.must("network", "create", "-d", docker.Name, "--ipam-driver", docker.Name, "--ipv6", "net2")
	pidA := d.runContainer("ca", "--network", "net1")
	d.runContainer("cb", "--network", "net1")
	pidC := d.runContainer("cc", "--network", "net2")
	b4, b6 := d.addrs("cb")
	c4, c6 := d.addrs("cc")
	ping := func(pid int, dst netip.Addr) error { return pingFrom(ctx, pid, dst) }
	for _, dst := range []netip.Addr{b4, b6} {
		waitFor(t, 10*time.Second, fmt.Sprintf("ca reaches cb at %v", dst), func() error { return ping(pidA, dst) })
	}
	for _, c := range []struct {
		from int
		dst  netip.Addr
		what string
	}{{pidC, b4, "cc (net2) reaches cb (net1) over IPv4"}, {pidC, b6, "cc (net2) reaches cb (net1) over IPv6"},
		{pidA, c4, "ca (net1) reaches cc (net2) over IPv4"}, {pidA, c6, "ca (net1) reaches cc (net2) over IPv6"}} {
		if ping(c.from, c.dst) == nil {
			t.Errorf("%s: the networks' policies let it through", c.what)
		}
	}

	// A restart under pings: the kernel keeps endpoints, routes and
	// rules; the new run adopts them and serves Docker again.
	pings := n.Command(context.Background(), "nsenter", "-t", strconv.Itoa(pidA), "-n", "ping", "-n", "-q", "-i", "0.01", b4.String())
	out := &lockedBuffer{}
	pings.Stdout, pings.Stderr = out, out
	if err := pings.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pings.Process.Kill(); pings.Wait() })
	time.Sleep(500 * time.Millisecond)
	sw.cmd.Process.Signal(syscall.SIGTERM)
	<-sw.exited
	sw.exited <- nil
	sw = startSwitchd(t, n, bin, args...)
	waitFor(t, 30*time.Second, "switchd serves after its restart", serving(sw))
	time.Sleep(time.Second)
	pings.Process.Signal(syscall.SIGINT)
	pings.Wait()
	m := pingStats.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no ping summary:\n%s", out.String())
	}
	if m[1] != m[2] {
		t.Errorf("pings at 10 ms across the switchd restart: %s sent, %s received", m[1], m[2])
	}
	t.Logf("pings at 10 ms across the switchd restart: %s sent, %s received", m[1], m[2])
	pidD := d.runContainer("cd", "--network", "net1")
	waitFor(t, 10*time.Second, "a container started after the restart reaches cb", func() error { return ping(pidD, b4) })

	// docker rm: the endpoint, its veth, routes and set elements go.
	eps := func() []endpointapi.Endpoint {
		l, err := (&endpointapi.Client{Socket: api}).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l.Endpoints
	}
	var bIface string
	for _, ep := range eps() {
		if ep.IPv4 == b4 {
			bIface = ep.HostIface
		}
	}
	if bIface == "" {
		t.Fatalf("no endpoint of cb (%v) in %+v", b4, eps())
	}
	d.must("rm", "-f", "cb")
	waitFor(t, 10*time.Second, "cb's veth, routes and set elements removed", func() error {
		if out, _ := n.Run(ctx, "ip", "-br", "link"); strings.Contains(out, bIface) {
			return fmt.Errorf("veth %s is still there", bIface)
		}
		for _, a := range []netip.Addr{b4, b6} {
			if out, _ := n.Run(ctx, "ip", "route", "show", "to", a.String()); strings.TrimSpace(out) != "" {
				return fmt.Errorf("route to %v: %s", a, out)
			}
		}
		out, err := n.Run(ctx, "nft", "list", "table", "inet", "switchd")
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{b4, b6} {
			if strings.Contains(out, " "+a.String()+",") || strings.Contains(out, " "+a.String()+" }") {
				return fmt.Errorf("%v is still in the policy table:\n%s", a, out)
			}
		}
		return nil
	})

	// Bad input through dockerd: a network on the two-address pool takes
	// two containers; the third run fails with switchd's message, and no
	// endpoint or veth is left of it.
	d.must("network", "create", "-d", docker.Name, "--ipam-driver", docker.Name, "--subnet", "10.78.0.0/31", "tiny")
	d.runContainer("t1", "--network", "tiny")
	d.runContainer("t2", "--network", "tiny")
	before := len(eps())
	links, _ := n.Run(ctx, "ip", "-br", "link")
	out3, err := d.run(ctx, "run", "-d", "--name", "t3", "--network", "tiny", testImage, "sleep", "100000")
	if err == nil || !strings.Contains(out3, "switchd: ") || !strings.Contains(out3, "pool exhausted") {
		t.Errorf("docker run on an exhausted pool: %v\n%s", err, out3)
	}
	if after := len(eps()); after != before {
		t.Errorf("endpoints %d before the failed run, %d after", before, after)
	}
	if now, _ := n.Run(ctx, "ip", "-br", "link"); now != links {
		t.Errorf("links changed by the failed run:\n%s\nnow:\n%s", links, now)
	}

	// Everything removed: no endpoint, no veth of ours, no network.
	d.must("rm", "-f", "ca", "cc", "cd", "t1", "t2", "t3")
	d.must("network", "rm", "net1", "net2", "tiny")
	if l := eps(); len(l) != 0 {
		t.Errorf("endpoints left after docker rm: %+v", l)
	}
	if out, _ := n.Run(ctx, "ip", "-br", "link"); strings.Contains(out, "swc") || strings.Contains(out, "dkr") {
		t.Errorf("veths left after docker rm:\n%s", out)
	}
}

// dockerHost is a host namespace of the test's own with switchd serving
// the Docker driver and a dockerd using it, the busybox image imported.
// No default route in the host: the containers' gateway must resolve
// without one.
type dockerHost struct {
	n        *ns.NS
	d        *testDockerd
	sw       *runningSwitchd
	bin, api string
	args     []string // switchd's, to start it again
	tb       testing.TB
}

func newDockerHost(t testing.TB) *dockerHost {
	ns.Privileged(t)
	busybox := dockerTools(t)
	h := &dockerHost{n: ns.NewT(t, "docker"), tb: t}
	if _, err := h.n.Run(t.Context(), "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, dockerConfig(t), 0o644); err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(dir, "plugins")
	h.api = filepath.Join(dir, "switchd.sock")
	h.bin = simtest.SwitchdBinary(t)
	h.args = []string{"run", "--config", cfg, "--socket", h.api, "--state-dir", filepath.Join(dir, "state"),
		"--gnmi-socket", "", "--docker-socket", filepath.Join(plugins, docker.Name+".sock")}
	h.sw = startSwitchd(t, h.n, h.bin, h.args...)
	waitFor(t, 30*time.Second, "switchd serves", h.serving(h.sw))
	h.d = startDockerd(t, h.n, plugins)
	h.d.importBusybox(busybox)
	return h
}

// serving says whether sw answers on the API socket (fatal if it exited).
func (h *dockerHost) serving(sw *runningSwitchd) func() error {
	return func() error {
		if err := sw.alive(); err != nil {
			h.tb.Fatal(err)
		}
		_, err := sim.SwitchdStatus(h.tb.Context(), h.api)
		return err
	}
}

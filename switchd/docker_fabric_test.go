package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/host/docker"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// TestDockerAcrossHostsPrivileged puts a dockerd on host1 and host3 of
// the default fabric (behind different leaves), each finding its own
// host's switchd (sim.Options.Docker), and creates on both a network of
// group web and one of group other. The web containers ping each other
// across the fabric over IPv4 and IPv6; the other container on host1
// reaches neither; docker rm takes the container out of the other host's
// sets. Remote members come by BGP: each network's group is a group whose
// membership the hosts announce (the simulator writes no network sets).
func TestDockerAcrossHostsPrivileged(t *testing.T) {
	ns.Privileged(t)
	busybox := dockerTools(t)
	topo := sim.Default()
	f := simtest.Start(t, topo, func(o *sim.Options) { o.Docker = true })
	simWaitConverged(t, f)
	ctx := t.Context()
	docks := map[string]*testDockerd{}
	for _, h := range []string{"host1", "host3"} {
		n, err := ns.Open(f.Node(h).Namespace)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		d := startDockerd(t, n, f.Node(h).DockerPlugins)
		d.importBusybox(busybox)
		for net, group := range map[string]string{"net1": "web", "net2": "other"} {
			d.must("network", "create", "-d", docker.Name, "--ipam-driver", docker.Name, "--ipv6", "-o", docker.GroupOption+"="+group, net)
		}
		docks[h] = d
	}
	pid1 := docks["host1"].runContainer("w1", "--network", "net1")
	pidO := docks["host1"].runContainer("o1", "--network", "net2")
	pid3 := docks["host3"].runContainer("w3", "--network", "net1")
	w1, w3 := make([]netip.Addr, 2), make([]netip.Addr, 2)
	w1[0], w1[1] = docks["host1"].addrs("w1")
	w3[0], w3[1] = docks["host3"].addrs("w3")
	ping := func(pid int, dst netip.Addr) error { return pingFrom(ctx, pid, dst) }
	for i := range w3 {
		waitFor(t, 30*time.Second, fmt.Sprintf("w1 (host1) reaches w3 (host3) at %v", w3[i]), func() error { return ping(pid1, w3[i]) })
		waitFor(t, 30*time.Second, fmt.Sprintf("w3 (host3) reaches w1 (host1) at %v", w1[i]), func() error { return ping(pid3, w1[i]) })
		if ping(pidO, w3[i]) == nil {
			t.Errorf("o1 (group other, host1) reaches w3 (group web, host3) at %v", w3[i])
		}
	}

	// docker rm on host3: w3 leaves host1's sets with its membership
	// route.
	inTable := func(out string, a netip.Addr) bool {
		return strings.Contains(out, a.String()+"/") || strings.Contains(out, " "+a.String()+",") || strings.Contains(out, " "+a.String()+" }")
	}
	if out, err := f.Exec(ctx, "host1", "nft", "list", "table", "inet", "switchd"); err != nil || !inTable(out, w3[0]) {
		t.Fatalf("w3 (%v) is not in host1's table before docker rm (%v):\n%s", w3[0], err, out)
	}
	docks["host3"].must("rm", "-f", "w3")
	waitFor(t, 30*time.Second, "w3's addresses gone from host1's policy table", func() error {
		out, err := f.Exec(ctx, "host1", "nft", "list", "table", "inet", "switchd")
		if err != nil {
			return err
		}
		for _, a := range w3 {
			if inTable(out, a) {
				return fmt.Errorf("%v still in host1's table", a)
			}
		}
		return nil
	})
	for _, h := range []string{"host1", "host3"} {
		if out, _ := f.Exec(ctx, h, "ip", "route", "show", "proto", "switchd"); strings.Contains(out, w3[0].String()+" dev") {
			t.Errorf("%s still routes w3 (%v) to a device:\n%s", h, w3[0], out)
		}
	}
}

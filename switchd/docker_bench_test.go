package main

import (
	"context"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/switchd/switchd/host/docker"
)

// BenchmarkPrivilegedDockerRun times `docker run -d` of a container to
// the first ping that reaches it from another container of its network,
// on the switchd driver and on Docker's own bridge driver, in the same
// dockerd (a user-defined bridge network: its bridge lives in the test's
// namespace and dockerd adds no iptables rules, so the host is
// untouched). The docker client's own time is in both.
//
//	go test -c -o /tmp/s.test ./switchd && (cd switchd && /tmp/s.test -test.run '^$' -test.bench DockerRun -test.benchtime 10x)
func BenchmarkPrivilegedDockerRun(b *testing.B) {
	h := newDockerHost(b)
	d := h.d
	d.must("network", "create", "-d", docker.Name, "--ipam-driver", docker.Name, "sw")
	d.must("network", "create", "-d", "bridge", "--subnet", "172.30.0.0/24", "br")
	for _, net := range []string{"sw", "br"} {
		peer := d.runContainer("peer-"+net, "--network", net)
		runs := 0
		b.Run(net, func(b *testing.B) {
			for i := range b.N {
				name := net + strconv.Itoa(runs+i)
				start := time.Now()
				d.must("run", "-d", "--name", name, "--network", net, testImage, "sleep", "100000")
				a, _ := d.addrs(name)
				for pingQuick(peer, a) != nil {
					if time.Since(start) > 30*time.Second {
						b.Fatalf("%s not reached within 30 s", name)
					}
				}
				b.StopTimer()
				d.must("rm", "-f", name)
				b.StartTimer()
			}
			runs += b.N
		})
	}
}

// pingQuick is one ping waiting 100 ms for the answer, so polling does not
// wait a second for a packet lost before the path was there.
func pingQuick(pid int, dst netip.Addr) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(pid), "-n", "ping", "-c", "1", "-W", "0.1", dst.String()).Run()
}

package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
)

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// TestLeafRestartLosesNoPacketsPrivileged kills a leaf's switchd and starts
// it again while a host behind it pings a host behind the other leaf every
// 10 ms: the routes stay in the leaf's kernel, its peers keep theirs
// (graceful restart), and not one packet may be lost.
func TestLeafRestartLosesNoPacketsPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := defaultFabric(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { restartLeafUnderPings(t, f, sig) })
	}
}

// restartLeafUnderPings kills leaf1's switchd with sig and starts it again
// while host1 pings host3 every 10 ms; at most the reply in flight when
// the pings stop may be missing.
func restartLeafUnderPings(t *testing.T, f *sim.Fabric, sig syscall.Signal) {
	t.Helper()
	ctx := context.Background()
	for _, fam := range []int{4, 6} {
		if err := f.Ping(ctx, "host1", "host3", fam); err != nil {
			t.Fatalf("before restart: %v", err)
		}
	}
	flow := startPings(t, f, "host1", "host3", 4, 10*time.Millisecond)
	time.Sleep(time.Second)

	killAndStart(t, f, "leaf1", sig)
	simWaitConverged(t, f)
	// Past the sweep: BGP synced and stale routes swept.
	time.Sleep(2 * time.Second)

	sent, recv := flow.stop(t)
	t.Logf("leaf1 restart (%v): %d sent, %d received, %d lost", sig, sent, recv, sent-recv)
	if sent < 300 {
		t.Fatalf("only %d pings sent; the test did not cover the restart", sent)
	}
	// One reply may still be in flight when ping is stopped.
	if lost := sent - recv; lost > 1 {
		t.Errorf("%d of %d pings lost across the leaf's restart", lost, sent)
	}
}

// pings is a ping from one node's loopback to another's at a fixed
// interval, counting what is lost.
type pings struct {
	cmd *exec.Cmd
	out *lockedBuffer
}

// startPings pings dst's loopback of family fam (4 or 6) from src's.
func startPings(t testing.TB, f *sim.Fabric, src, dst string, fam int, every time.Duration) *pings {
	t.Helper()
	s, d := f.Node(src), f.Node(dst)
	from, to := s.Loopback4, d.Loopback4
	if fam == 6 {
		from, to = s.Loopback6, d.Loopback6
	}
	cmd, err := f.Command(context.Background(), src, "ping", "-n", "-q", "-i", strconv.FormatFloat(every.Seconds(), 'f', 3, 64),
		"-W", "1", "-I", from.String(), to.String())
	if err != nil {
		t.Fatal(err)
	}
	p := &pings{cmd: cmd, out: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

// stop ends the pings and returns how many were sent and answered.
func (p *pings) stop(t testing.TB) (sent, received int) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
	return pingSummary(t, p.out.String())
}

// pingSummary reads how many pings were sent and answered from ping's
// output.
func pingSummary(t testing.TB, out string) (sent, received int) {
	t.Helper()
	m := pingStats.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ping summary in:\n%s", out)
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received
}

// killAndStart kills node's switchd with sig, waits for it to exit, lets
// traffic flow 2 s without it, and starts it again.
func killAndStart(t testing.TB, f *sim.Fabric, node string, sig syscall.Signal) {
	t.Helper()
	if err := f.Kill(node, sig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, node+"'s switchd exits", func() error {
		if f.Running(node) {
			return fmt.Errorf("still running")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // traffic flows with no switchd on the node
	if err := f.Start(node); err != nil {
		t.Fatal(err)
	}
}

func simWaitConverged(t *testing.T, f *sim.Fabric) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sim.WaitConverged(ctx, f); err != nil {
		t.Fatal(err)
	}
}

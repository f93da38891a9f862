package main

import (
	"context"
	"fmt"
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
	ctx := context.Background()
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			for _, fam := range []int{4, 6} {
				if err := f.Ping(ctx, "host1", "host3", fam); err != nil {
					t.Fatalf("before restart: %v", err)
				}
			}
			src, dst := f.Node("host1"), f.Node("host3")
			ping, err := f.Command(ctx, "host1", "ping", "-n", "-q", "-i", "0.01", "-W", "1",
				"-I", src.Loopback4.String(), dst.Loopback4.String())
			if err != nil {
				t.Fatal(err)
			}
			out := &lockedBuffer{}
			ping.Stdout, ping.Stderr = out, out
			if err := ping.Start(); err != nil {
				t.Fatal(err)
			}
			defer ping.Process.Kill()
			time.Sleep(time.Second)

			if err := f.Kill("leaf1", sig); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "leaf1's switchd exits", func() error {
				if f.Running("leaf1") {
					return fmt.Errorf("still running")
				}
				return nil
			})
			time.Sleep(2 * time.Second) // traffic flows with no switchd on leaf1
			if err := f.Start("leaf1"); err != nil {
				t.Fatal(err)
			}
			simWaitConverged(t, f)
			// Past the sweep: BGP synced and stale routes swept.
			time.Sleep(2 * time.Second)

			ping.Process.Signal(syscall.SIGINT)
			ping.Wait()
			m := pingStats.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no ping summary in:\n%s", out.String())
			}
			sent, _ := strconv.Atoi(m[1])
			recv, _ := strconv.Atoi(m[2])
			t.Logf("leaf1 restart (%v): %d sent, %d received, %d lost", sig, sent, recv, sent-recv)
			if sent < 300 {
				t.Fatalf("only %d pings sent; the test did not cover the restart", sent)
			}
			// One reply may still be in flight when ping is stopped.
			if lost := sent - recv; lost > 1 {
				t.Errorf("%d of %d pings lost across the leaf's restart", lost, sent)
			}
		})
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

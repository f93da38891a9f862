package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
)

// TestLeafRestartWithUplinkDownPrivileged restarts a leaf (SIGKILL) while
// one of its spine links fails: the leaf comes back with a neighbor it
// cannot reach. Its hosts keep the leaf's routes as stale meanwhile
// (graceful restart); once the leaf is back they must hold exactly what
// the fabric with that link down routes, the spine's loopback through
// the other leaf only, long before the restart time (sim.RestartTime)
// would drop the stale routes anyway.
func TestLeafRestartWithUplinkDownPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := defaultFabric(t)
	leaf := f.Node("leaf1")
	up := leaf.Interfaces[0]
	down := map[int]bool{up.Link: true}
	for _, c := range []struct {
		name string
		// beforeStart: the link fails while the leaf's daemon is dead;
		// else right after it starts, while its sessions come up.
		beforeStart bool
	}{{"down before the start", true}, {"down after the start", false}} {
		t.Run(c.name, func(t *testing.T) {
			if err := f.Kill(leaf.Name, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "leaf1's switchd exits", func() error {
				if f.Running(leaf.Name) {
					return errors.New("still running")
				}
				return nil
			})
			if c.beforeStart {
				setLink(t, f, leaf.Name, up.Name, false)
			}
			if err := f.Start(leaf.Name); err != nil {
				t.Fatal(err)
			}
			if !c.beforeStart {
				time.Sleep(500 * time.Millisecond)
				setLink(t, f, leaf.Name, up.Name, false)
			}
			t.Cleanup(func() { f.SetLink(leaf.Name, up.Name, true) })
			ctx, cancel := context.WithTimeout(context.Background(), sim.RestartTime*time.Second/2)
			defer cancel()
			start := time.Now()
			if _, err := f.WaitFIBsExact(ctx, down); err != nil {
				t.Fatalf("with %s-%s down across %s's restart: %v", leaf.Name, up.Peer, leaf.Name, err)
			}
			t.Logf("FIBs exact %v after the restart", time.Since(start).Round(time.Millisecond))
			setLink(t, f, leaf.Name, up.Name, true)
			ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := f.WaitFIBsExact(ctx, nil); err != nil {
				t.Fatalf("link back up: %v", err)
			}
		})
	}
}

func setLink(t *testing.T, f *sim.Fabric, node, iface string, up bool) {
	t.Helper()
	if err := f.SetLink(node, iface, up); err != nil {
		t.Fatal(err)
	}
}

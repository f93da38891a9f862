package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// TestLinkDownFailoverPrivileged sets each of leaf1's spine links down in
// turn, inside leaf1, while host1 pings host3 every 10 ms over IPv4 and
// IPv6, with the default fabric's own timers (hold 9 s, graceful restart
// on). One of the two links carries the flows; losing it must cost less
// than a second of traffic: the sessions over the link end at carrier
// loss on both ends (not at hold-timer expiry), their paths are
// withdrawn at once (not kept as after a graceful restart), and the other
// leaf stops sending through the spine that lost the link. Then the link
// comes back and every session over it, IPv6 included, is established
// again.
func TestLinkDownFailoverPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := simtest.Start(t, sim.Default())
	simtest.WaitConverged(t, f)
	ctx := context.Background()
	const interval = 10 * time.Millisecond

	for _, spine := range []string{"spine1", "spine2"} {
		t.Run(spine, func(t *testing.T) {
			flows := []*pings{
				startPings(t, f, "host1", "host3", 4, interval),
				startPings(t, f, "host1", "host3", 6, interval),
			}
			time.Sleep(time.Second)
			if _, err := f.Exec(ctx, "leaf1", "ip", "link", "set", spine, "down"); err != nil {
				t.Fatal(err)
			}
			// Well past the hold time (9 s) and into the graceful
			// restart time: what the old code lost shows.
			time.Sleep(12 * time.Second)
			for i, flow := range flows {
				sent, recv := flow.stop(t)
				lost := sent - recv
				outage := time.Duration(lost) * interval
				t.Logf("leaf1-%s down, IPv%d: %d sent, %d received, %d lost (~%v outage)", spine, 4+2*i, sent, recv, lost, outage)
				if sent < 500 {
					t.Fatalf("only %d pings sent; the test did not cover the failure", sent)
				}
				if outage >= time.Second {
					t.Errorf("IPv%d: ~%v of traffic lost after leaf1-%s went down, want < 1s", 4+2*i, outage, spine)
				}
			}

			if _, err := f.Exec(ctx, "leaf1", "ip", "link", "set", spine, "up"); err != nil {
				t.Fatal(err)
			}
			// Connect-retry is 1 s: 10 s is liveness, not speed. What
			// would miss it is a FIB that does not notice what the
			// kernel flushed with the link (nexthop objects, routes).
			waitFor(t, 10*time.Second, "every session over leaf1-"+spine+" established again, every loopback routed", func() error {
				st, err := f.Status(ctx)
				if err != nil {
					return err
				}
				for _, s := range st {
					if s.Name == "leaf1" || s.Name == spine {
						inSync := s.FIBInSync != nil && *s.FIBInSync
						if !s.Converged() || !inSync {
							return fmt.Errorf("%s: %d of %d sessions up, missing %v, fib in sync %v, err %q", s.Name, s.SessionsUp, s.SessionsTotal, s.Missing, inSync, s.Err)
						}
					}
				}
				return nil
			})
		})
	}
}

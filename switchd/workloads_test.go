package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
)

// TestWorkloadsPrivileged attaches containers to every host of the default
// fabric through the daemon's endpoint API (what the CNI plugin calls) and
// checks the fabric carries them the way it should.
func TestWorkloadsPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := defaultFabric(t)
	ctx := context.Background()
	ws, err := f.AddWorkloads(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 8 {
		t.Fatalf("attached %d workloads, want 2 on each of 4 hosts", len(ws))
	}

	t.Run("ReachEachOtherAcrossLeaves", func(t *testing.T) {
		waitFor(t, 30*time.Second, "every workload reaches every other", func() error {
			m := f.WorkloadMatrix(ctx, ws)
			if n := m.Failures(); n > 0 {
				var b strings.Builder
				m.Print(&b)
				return fmt.Errorf("%d pings failed:\n%s", n, b.String())
			}
			return nil
		})
	})

	t.Run("LeavesCarryBlocksNotWorkloads", func(t *testing.T) {
		for _, leaf := range []string{"leaf1", "leaf2"} {
			for _, w := range ws {
				for _, a := range []netip.Addr{w.IPv4, w.IPv6} {
					if r := routeTo(t, f, leaf, a); r != nil {
						t.Errorf("%s has a host route for workload %s/%s (%v)", leaf, w.Host, w.Name, a)
					}
					blk := coveringRoute(t, f, leaf, a)
					if !blk.IsValid() {
						t.Errorf("%s has no route covering workload %s/%s (%v)", leaf, w.Host, w.Name, a)
						continue
					}
					if want := map[bool]int{true: 26, false: 122}[a.Is4()]; blk.Bits() != want {
						t.Errorf("%s reaches %v via %v, want the host's /%d block", leaf, a, blk, want)
					}
				}
			}
		}
	})

	t.Run("LeafRejectsPrefixOutsideHostRange", func(t *testing.T) {
		// host1 announces a prefix of host3's range: the hijack attempt.
		h3 := f.Node("host3").Workload4
		hijack := netip.PrefixFrom(h3.Addr(), 26)
		orig, err := os.ReadFile(f.ConfigPath("host1"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			os.WriteFile(f.ConfigPath("host1"), orig, 0o644)
			f.Reload(context.Background(), "host1")
		})
		received := func() (uint64, error) {
			st, err := sim.SwitchdStatus(ctx, f.SocketPath("leaf1"))
			if err != nil {
				return 0, err
			}
			for _, n := range st.BGP.Neighbors {
				if n.Address == peerAddr(t, f, "leaf1", "host1", 4).String() {
					return n.Received["ipv4-unicast"], nil
				}
			}
			return 0, fmt.Errorf("leaf1 has no neighbor host1")
		}
		before, err := received()
		if err != nil {
			t.Fatal(err)
		}
		// A hostile host also opens its own export policy (which by
		// default announces only its own prefixes).
		hostile := bytes.ReplaceAll(withAggregate(t, orig, hijack),
			[]byte(`"default-export-policy": "REJECT_ROUTE"`), []byte(`"default-export-policy": "ACCEPT_ROUTE"`))
		writeConfig(t, f.ConfigPath("host1"), hostile)
		if err := f.Reload(ctx, "host1"); err != nil {
			t.Fatal(err)
		}
		// leaf1 receives it (so the test is not vacuous) and rejects it.
		waitFor(t, 20*time.Second, "leaf1 receives host1's extra prefix", func() error {
			n, err := received()
			if err == nil && n != before+1 {
				err = fmt.Errorf("leaf1 received %d prefixes from host1, want %d", n, before+1)
			}
			return err
		})
		time.Sleep(time.Second) // time to (wrongly) install it
		// Nobody may route host3's block towards host1: not leaf1, and
		// not the spines (via leaf1).
		for n, thief := range map[string]string{"leaf1": "host1", "spine1": "leaf1", "spine2": "leaf1"} {
			if peers := peersOf(f, n, gateways(routeFor(t, f, n, hijack))); len(peers) == 0 || slices.Contains(peers, thief) {
				t.Errorf("%s routes host3's block %v via %v", n, hijack, peers)
			}
		}
		// host2's workloads, behind the same leaf as the thief, still
		// reach host3's.
		if err := f.PingWorkload(ctx, workloadOn(ws, "host2"), workloadOn(ws, "host3"), 4); err != nil {
			t.Error(err)
		}
	})

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run("HostRestartKeepsEndpoints/"+sig.String(), func(t *testing.T) {
			before, err := f.Workloads(ctx)
			if err != nil {
				t.Fatal(err)
			}
			routes := workloadRoutes(t, f, "host2")
			if err := f.Kill("host2", sig); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "host2's switchd exits", func() error {
				if f.Running("host2") {
					return fmt.Errorf("still running")
				}
				return nil
			})
			if err := f.Start("host2"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "host2's endpoints back in its API", func() error {
				after, err := f.Workloads(ctx)
				if err != nil {
					return err
				}
				if !slices.Equal(before, after) {
					return fmt.Errorf("workloads before %v, after %v", before, after)
				}
				return nil
			})
			if got := workloadRoutes(t, f, "host2"); !slices.Equal(got, routes) {
				t.Errorf("host2 workload routes before %v, after %v", routes, got)
			}
			// A new workload gets an address no one else has.
			w, err := f.AddWorkload(ctx, "host2", "new-"+strings.ToLower(sig.String()))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range before {
				if o.IPv4 == w.IPv4 || o.IPv6 == w.IPv6 {
					t.Errorf("new workload got %v/%v, already %s/%s's", w.IPv4, w.IPv6, o.Host, o.Name)
				}
			}
			if err := f.DelWorkload(ctx, "host2", w.Name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func workloadOn(ws []sim.Workload, host string) sim.Workload {
	for _, w := range ws {
		if w.Host == host {
			return w
		}
	}
	return sim.Workload{}
}

// workloadRoutes lists the host routes (a /32 or /128 through a device) of
// a node, as "prefix dev N" strings.
func workloadRoutes(t *testing.T, f *sim.Fabric, node string) []string {
	var out []string
	for _, r := range kernelRoutes(t, f, node) {
		if r.Dst == nil || r.Gw != nil {
			continue
		}
		if ones, bits := r.Dst.Mask.Size(); ones == bits {
			out = append(out, fmt.Sprintf("%v dev %d", r.Dst, r.LinkIndex))
		}
	}
	slices.Sort(out)
	return out
}

// coveringRoute is the longest-prefix route of node containing a.
func coveringRoute(t *testing.T, f *sim.Fabric, node string, a netip.Addr) netip.Prefix {
	var best netip.Prefix
	for _, r := range kernelRoutes(t, f, node) {
		if r.Dst == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), ones)
		if p.Contains(a) && (!best.IsValid() || p.Bits() > best.Bits()) {
			best = p
		}
	}
	return best
}

// withAggregate adds a local aggregate for p to a node config, next to the
// loopbacks it already originates.
func withAggregate(t *testing.T, cfg []byte, p netip.Prefix) []byte {
	t.Helper()
	s := string(cfg)
	i := strings.Index(s, `"aggregate": [`)
	if i < 0 {
		t.Fatal("config has no local aggregates to add to")
	}
	i += len(`"aggregate": [`)
	entry := fmt.Sprintf(`{"prefix": %q, "config": {"prefix": %q}},`, p.String(), p.String())
	return []byte(s[:i] + entry + s[i:])
}

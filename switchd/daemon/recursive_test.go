package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/config/configtest"
)

// TestRecursiveNextHopPrivileged: an iBGP peer (gobgpd) announces a route
// whose next hop is a loopback, 10.255.0.2, that is not on any link of
// ours and is reachable only through a static route of another owner. The
// daemon installs the route via the static route's gateway, follows it to
// the other link when it changes, takes the route out while nothing
// resolves the loopback and puts it back when the static route returns.
// Next-hop tracking: an eBGP peer (a second gobgpd) is sent the route only
// while its next hop resolves.
func TestRecursiveNextHopPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	for _, bin := range []string{"gobgpd", "gobgp"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed: %v", bin, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cur, err := ns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	peer := ns.NewT(t, "recpeer")
	for i := range 2 {
		link := fmt.Sprintf("torec%d", i)
		if err := ns.Veth(cur, link, peer, fmt.Sprintf("eth%d", i)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // our end outlives the peer's namespace
			if l, err := netlink.LinkByName(link); err == nil {
				netlink.LinkDel(l)
			}
		})
		for _, a := range []struct {
			n    *ns.NS
			link string
			pfx  string
		}{{cur, link, fmt.Sprintf("10.98.%d.1/24", i)}, {peer, fmt.Sprintf("eth%d", i), fmt.Sprintf("10.98.%d.2/24", i)}} {
			if err := a.n.AddAddr(a.link, netip.MustParsePrefix(a.pfx)); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(n *ns.NS, argv ...string) {
		t.Helper()
		if out, err := n.Run(ctx, argv...); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	run(peer, "ip", "link", "set", "lo", "up") // gobgpd's API
	// The eBGP peer that switchd advertises to.
	ebgp := ns.NewT(t, "recebgp")
	if err := ns.Veth(cur, "torecx", ebgp, "eth0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName("torecx"); err == nil {
			netlink.LinkDel(l)
		}
	})
	if err := cur.AddAddr("torecx", netip.MustParsePrefix("10.98.9.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := ebgp.AddAddr("eth0", netip.MustParsePrefix("10.98.9.2/24")); err != nil {
		t.Fatal(err)
	}
	run(ebgp, "ip", "link", "set", "lo", "up")
	run(cur, "ip", "route", "add", "10.255.0.0/24", "via", "10.98.0.2", "proto", "static")
	t.Cleanup(func() { cur.Run(context.Background(), "ip", "route", "del", "10.255.0.0/24", "proto", "static") })

	dir := t.TempDir()
	// gobgpdConf is a gobgpd config: one neighbor, fast reconnects.
	gobgpdConf := func(name string, as int, id, neighbor string, peerAS int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(fmt.Sprintf(`[global.config]
  as = %d
  router-id = %q
[[neighbors]]
  [neighbors.config]
    neighbor-address = %q
    peer-as = %d
  [neighbors.timers.config]
    connect-retry = 1
`, as, id, neighbor, peerAS)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	toml := gobgpdConf("gobgpd.toml", 65001, "10.98.0.2", "10.98.0.1", 65001)
	toml2 := gobgpdConf("gobgpd-ebgp.toml", 65003, "10.98.9.2", "10.98.9.1", 65001)
	for _, g := range []struct {
		n    *ns.NS
		toml string
	}{{peer, toml}, {ebgp, toml2}} {
		gobgpd := g.n.Command(ctx, "gobgpd", "-f", g.toml, "--api-hosts", "127.0.0.1:50051", "-l", "warn")
		gobgpd.Stdout, gobgpd.Stderr = testLogOut(), testLogOut()
		if err := gobgpd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			gobgpd.Process.Kill()
			gobgpd.Wait()
		})
	}

	cfg := filepath.Join(dir, "switchd.json")
	conf := configtest.BGP{ASN: 65001, RouterID: "10.98.0.1", Neighbors: []configtest.Neighbor{
		{Address: "10.98.0.2", PeerAS: 65001, Hold: 9, Keepalive: 3, ConnectRetry: 1, Import: configtest.Accept, Export: configtest.Reject},
		{Address: "10.98.9.2", PeerAS: 65003, Hold: 9, Keepalive: 3, ConnectRetry: 1, Import: configtest.Reject, Export: configtest.Accept},
	}}
	if err := os.WriteFile(cfg, conf.JSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	dctx, stop := context.WithCancel(ctx)
	go func() {
		done <- Run(dctx, Options{ConfigPath: cfg, Socket: filepath.Join(dir, "switchd.sock"), StateDir: dir,
			Logger: slog.New(slog.NewTextHandler(testLogOut(), nil))})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		// Routes stay in the kernel when switchd exits; this namespace
		// outlives the test.
		for _, p := range []string{"198.51.100.0/24", "198.51.101.0/24"} {
			if r := ownRoute(t, netip.MustParsePrefix(p)); r != nil {
				netlink.RouteDel(r)
			}
		}
	})

	waitFor(t, "gobgpd's API", func() error {
		_, err := peer.Run(ctx, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global")
		return err
	})
	run(peer, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "add", "-a", "ipv4", "198.51.100.0/24", "nexthop", "10.255.0.2")

	dst := netip.MustParsePrefix("198.51.100.0/24")
	via := func(want string) func() error {
		return func() error {
			got := kernelVia(t, dst)
			if got != want {
				return fmt.Errorf("switchd's route to %v via %q, want %q", dst, got, want)
			}
			return nil
		}
	}
	advertised := func(want bool) func() error {
		return func() error {
			out, err := ebgp.Run(ctx, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "-a", "ipv4", dst.String())
			if got := err == nil && strings.Contains(out, dst.String()); got != want {
				return fmt.Errorf("eBGP peer has %v: %v, want %v (%v: %s)", dst, got, want, err, out)
			}
			return nil
		}
	}
	waitFor(t, "the route installed via the static route's gateway", via("10.98.0.2"))
	waitFor(t, "the route advertised to the eBGP peer", advertised(true))
	run(cur, "ip", "route", "replace", "10.255.0.0/24", "via", "10.98.1.2", "proto", "static")
	waitFor(t, "the route following the static route to the other link", via("10.98.1.2"))
	run(cur, "ip", "route", "del", "10.255.0.0/24", "proto", "static")
	waitFor(t, "the route out of the kernel while its next hop does not resolve", via(""))
	waitFor(t, "the route withdrawn from the eBGP peer while its next hop does not resolve", advertised(false))
	run(cur, "ip", "route", "add", "10.255.0.0/24", "via", "10.98.0.2", "proto", "static")
	waitFor(t, "the route back with the static route", via("10.98.0.2"))
	waitFor(t, "the route advertised again", advertised(true))

	// A third-party next hop: on a link of ours (torec1), but learned
	// over the session on the other link. When torec1 loses carrier the
	// session stays up; the path must still go out of use and out of
	// the eBGP peer's table, and come back with the link.
	third := netip.MustParsePrefix("198.51.101.0/24")
	run(peer, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "add", "-a", "ipv4", third.String(), "nexthop", "10.98.1.2")
	thirdVia := func(want string) func() error {
		return func() error {
			if got := kernelVia(t, third); got != want {
				return fmt.Errorf("switchd's route to %v via %q, want %q", third, got, want)
			}
			return nil
		}
	}
	thirdAdvertised := func(want bool) func() error {
		return func() error {
			out, err := ebgp.Run(ctx, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "-a", "ipv4", third.String())
			if got := err == nil && strings.Contains(out, third.String()); got != want {
				return fmt.Errorf("eBGP peer has %v: %v, want %v (%v: %s)", third, got, want, err, out)
			}
			return nil
		}
	}
	waitFor(t, "the third-party route installed", thirdVia("10.98.1.2"))
	waitFor(t, "the third-party route advertised", thirdAdvertised(true))
	run(peer, "ip", "link", "set", "eth1", "down")
	waitFor(t, "the third-party route withdrawn from the eBGP peer while its link has no carrier", thirdAdvertised(false))
	waitFor(t, "the third-party route out of the kernel", thirdVia(""))
	waitFor(t, "the recursive route unaffected", via("10.98.0.2"))
	run(peer, "ip", "link", "set", "eth1", "up")
	waitFor(t, "the third-party route back with the link", thirdVia("10.98.1.2"))
	waitFor(t, "the third-party route advertised again", thirdAdvertised(true))
}

// kernelVia returns the gateways of switchd's kernel route to p ("" if
// none): one, or several joined by spaces.
func kernelVia(t *testing.T, p netip.Prefix) string {
	t.Helper()
	r := ownRoute(t, p)
	if r == nil {
		return ""
	}
	if r.Gw != nil {
		return r.Gw.String()
	}
	s := ""
	for _, nh := range r.MultiPath {
		if s != "" {
			s += " "
		}
		s += nh.Gw.String()
	}
	if s == "" {
		s = fmt.Sprintf("no gateway (%+v)", r)
	}
	return s
}

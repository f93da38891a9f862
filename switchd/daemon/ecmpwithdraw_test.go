package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/config/configtest"
)

// frrPeer is an FRR 8.4 (zebra + bgpd) in its own namespace, linked to the
// test's namespace by a veth: 10.99.N.1/fd99:N::1 on our side,
// 10.99.N.2/fd99:N::2 on FRR's. It has one IPv4 and one IPv6 session with
// AS 65001 at our addresses.
type frrPeer struct {
	n   int
	as  uint32
	dir string
}

func (p *frrPeer) addr4() netip.Addr { return netip.MustParseAddr(fmt.Sprintf("10.99.%d.2", p.n)) }
func (p *frrPeer) addr6() netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd99:%d::2", p.n)) }
func (p *frrPeer) ours4() netip.Addr { return netip.MustParseAddr(fmt.Sprintf("10.99.%d.1", p.n)) }
func (p *frrPeer) ours6() netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd99:%d::1", p.n)) }

func startFRR(t *testing.T, n int, as uint32) *frrPeer {
	t.Helper()
	for _, bin := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("FRR not installed: %v", err)
		}
	}
	p := &frrPeer{n: n, as: as}
	peerNS := ns.NewT(t, fmt.Sprintf("frr%d", n))
	cur, err := ns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	link := fmt.Sprintf("tofrr%d", n)
	if err := ns.Veth(cur, link, peerNS, "eth0"); err != nil {
		t.Fatal(err)
	}
	// Our end lives in the test binary's namespace, which outlives the
	// test; deleting it removes the pair at once.
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(link); err == nil {
			netlink.LinkDel(l)
		}
	})
	for _, a := range []struct {
		n    *ns.NS
		link string
		p    netip.Prefix
	}{
		{cur, link, netip.PrefixFrom(p.ours4(), 24)}, {cur, link, netip.PrefixFrom(p.ours6(), 64)},
		{peerNS, "eth0", netip.PrefixFrom(p.addr4(), 24)}, {peerNS, "eth0", netip.PrefixFrom(p.addr6(), 64)},
	} {
		if err := a.n.AddAddr(a.link, a.p); err != nil {
			t.Fatal(err)
		}
	}

	// The daemons drop to user frr, which must own their directory.
	p.dir, err = os.MkdirTemp("", "frr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(p.dir) })
	u, err := user.Lookup("frr")
	if err != nil {
		t.Skipf("FRR not installed: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// Short timers and no advertisement interval: a withdrawal leaves at
	// once. Each session carries one family.
	conf := fmt.Sprintf(`hostname frr%[1]d
router bgp %[2]d
 bgp router-id %[5]v
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor %[3]v remote-as 65001
 neighbor %[3]v timers 3 9
 neighbor %[3]v timers connect 1
 neighbor %[3]v advertisement-interval 0
 neighbor %[4]v remote-as 65001
 neighbor %[4]v timers 3 9
 neighbor %[4]v timers connect 1
 neighbor %[4]v advertisement-interval 0
 address-family ipv4 unicast
  neighbor %[3]v activate
 exit-address-family
 address-family ipv6 unicast
  neighbor %[4]v activate
 exit-address-family
`, n, as, p.ours4(), p.ours6(), p.addr4())
	zconf, bconf := p.path("zebra.conf"), p.path("bgpd.conf")
	if err := os.WriteFile(zconf, []byte(fmt.Sprintf("hostname frr%d\n", n)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bconf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Both daemonize (-d); their PIDs are in the pid files. ns.NewT kills
	// whatever is left in the namespace as well.
	t.Cleanup(func() {
		for _, d := range []string{"bgpd", "zebra"} {
			raw, err := os.ReadFile(p.path(d + ".pid"))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	zserv := p.path("zserv.api")
	common := []string{"-d", "-u", "frr", "-g", "frr", "-P", "0", "-z", zserv, "--vty_socket", p.dir}
	if out, err := peerNS.Run(t.Context(), append([]string{"/usr/lib/frr/zebra", "-f", zconf, "-i", p.path("zebra.pid"),
		"--log", "file:" + p.path("zebra.log")}, common...)...); err != nil {
		t.Fatalf("start zebra: %v\n%s", err, out)
	}
	waitFor(t, "zebra's zserv socket", func() error {
		_, err := os.Stat(zserv)
		return err
	})
	if out, err := peerNS.Run(t.Context(), append([]string{"/usr/lib/frr/bgpd", "-f", bconf, "-i", p.path("bgpd.pid"),
		"--log", "file:" + p.path("bgpd.log")}, common...)...); err != nil {
		t.Fatalf("start bgpd: %v\n%s", err, out)
	}
	return p
}

func (p *frrPeer) path(name string) string { return filepath.Join(p.dir, name) }

func (p *frrPeer) vtysh(t *testing.T, cmds ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	args := []string{"--vty_socket", p.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("frr%d: vtysh %q: %v\n%s", p.n, cmds, err, out)
	}
	return string(out)
}

// announce (or withdraw) prefix from the peer.
func (p *frrPeer) announce(t *testing.T, prefix netip.Prefix, on bool) {
	t.Helper()
	af, cmd := "ipv4 unicast", "network "+prefix.String()
	if prefix.Addr().Is6() {
		af = "ipv6 unicast"
	}
	if !on {
		cmd = "no " + cmd
	}
	p.vtysh(t, "configure terminal", fmt.Sprintf("router bgp %d", p.as), "address-family "+af, cmd)
}

// hasPathViaUs reports whether the peer holds a path to prefix that
// switchd (AS 65001) advertised to it. If it does when it withdraws its
// own announcement, that path becomes its best and FRR announces it back
// (65001 in its AS_PATH) instead of withdrawing: an implicit withdrawal,
// the case GoBGP got wrong.
func (p *frrPeer) hasPathViaUs(t *testing.T, prefix netip.Prefix) bool {
	t.Helper()
	af := "ipv4"
	if prefix.Addr().Is6() {
		af = "ipv6"
	}
	var out struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
		} `json:"paths"`
	}
	raw := p.vtysh(t, fmt.Sprintf("show bgp %s unicast %v json", af, prefix))
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("frr%d: show bgp %v: %v\n%s", p.n, prefix, err, raw)
	}
	for _, path := range out.Paths {
		if slices.Contains(strings.Fields(path.ASPath.String), "65001") {
			return true
		}
	}
	return false
}

// ecmpConfig is a daemon config with the peers as neighbors, multipath on
// across ASes, and explicit accept-all policies.
func ecmpConfig(peers []*frrPeer) []byte {
	c := configtest.BGP{ASN: 65001, RouterID: "10.99.0.1", Multipath: true,
		Families: []configtest.Family{configtest.IPv4Unicast, configtest.IPv6Unicast}}
	for _, p := range peers {
		for _, fam := range []struct {
			addr netip.Addr
			afi  configtest.Family
		}{{p.addr4(), configtest.IPv4Unicast}, {p.addr6(), configtest.IPv6Unicast}} {
			c.Neighbors = append(c.Neighbors, configtest.Neighbor{
				Address: fam.addr.String(), PeerAS: p.as, Families: []configtest.Family{fam.afi},
				Hold: 9, Keepalive: 3, ConnectRetry: 1, Import: configtest.Accept, Export: configtest.Accept,
			})
		}
	}
	return c.JSON()
}

// statusClient reads the daemon's status over its API socket.
type statusClient struct{ c *http.Client }

func newStatusClient(sock string) *statusClient {
	return &statusClient{c: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}}
}

func (s *statusClient) get(ctx context.Context) (Status, error) {
	var st Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchd/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := s.c.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// kernelNextHops returns the gateways of switchd's kernel route to p, as
// the kernel forwards with them (a route over a nexthop group is reported
// with the group's members), sorted; nil if there is no such route.
func kernelNextHops(t *testing.T, p netip.Prefix) []netip.Addr {
	t.Helper()
	fam := netlink.FAMILY_V4
	if p.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst == nil || r.Dst.String() != p.String() {
			continue
		}
		var out []netip.Addr
		add := func(ip net.IP) {
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
		if r.Gw != nil {
			add(r.Gw)
		}
		for _, nh := range r.MultiPath {
			add(nh.Gw)
		}
		slices.SortFunc(out, netip.Addr.Compare)
		return out
	}
	return nil
}

// TestECMPWithdrawPrivileged: two FRR peers announce the same IPv4 and
// IPv6 prefix; one withdraws them. The kernel route must lose that next
// hop every time (the bug kept it for good), and the daemon must never call the FIB in
// sync while the kernel route still has the withdrawn next hop after
// switchd received the withdrawal (issue 7, item 2).
func TestECMPWithdrawPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	reps := 20
	if s := os.Getenv("SWITCHD_ECMP_REPS"); s != "" {
		reps, _ = strconv.Atoi(s)
	}
	peers := []*frrPeer{startFRR(t, 1, 65011), startFRR(t, 2, 65012)}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, ecmpConfig(peers), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "switchd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfg, Socket: sock, StateDir: dir,
			Logger: slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		// Routes stay in the kernel when switchd exits; this namespace
		// outlives the test, so take them out.
		for _, p := range []string{"198.51.100.0/24", "2001:db8:77::/48"} {
			for _, r := range kernelRoutes(p) {
				netlink.RouteDel(&r)
			}
		}
	})
	sc := newStatusClient(sock)
	sc.waitEstablished(ctx, t, 4)

	prefixes := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:77::/48")}
	both := func(p netip.Prefix) []netip.Addr {
		if p.Addr().Is4() {
			return []netip.Addr{peers[0].addr4(), peers[1].addr4()}
		}
		return []netip.Addr{peers[0].addr6(), peers[1].addr6()}
	}
	for _, p := range prefixes {
		peers[1].announce(t, p, true)
	}
	// looped counts, per family, the repetitions in which the withdrawing
	// peer held switchd's path and so withdrew implicitly (the case GoBGP
	// got wrong): the test must have met it to say anything.
	looped := map[bool]int{}
	for rep := range reps {
		for _, p := range prefixes {
			peers[0].announce(t, p, true)
		}
		for _, p := range prefixes {
			waitFor(t, fmt.Sprintf("rep %d: %v via both peers", rep, p), func() error {
				if got := kernelNextHops(t, p); !slices.Equal(got, both(p)) {
					return fmt.Errorf("kernel next hops %v", got)
				}
				return nil
			})
		}
		for _, p := range prefixes {
			if peers[0].hasPathViaUs(t, p) {
				looped[p.Addr().Is4()]++
			}
		}
		const stuckAfter = 15 * time.Second
		start := time.Now()
		for _, p := range prefixes {
			peers[0].announce(t, p, false)
		}
		for _, p := range prefixes {
			want := both(p)[1:]
			for {
				// The status first, the kernel second: a status that
				// calls the FIB in sync past the bound, with the kernel
				// still wrong after it, is the lie the issue reports.
				st, err := sc.get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got := kernelNextHops(t, p)
				if slices.Equal(got, want) {
					t.Logf("rep %d: %v lost the withdrawn next hop after %v", rep, p, time.Since(start).Round(time.Millisecond))
					break
				}
				// A liveness bound, not a speed claim: the member the
				// bug left in the kernel stayed for good.
				if time.Since(start) > stuckAfter {
					if st.FIB.InSync {
						t.Errorf("rep %d: fib in-sync: true while the kernel routes %v via %v, not %v", rep, p, got, want)
					}
					t.Fatalf("rep %d: %v still via %v %v after the withdrawal (want %v); fib status %+v",
						rep, p, got, time.Since(start).Round(time.Millisecond), want, st.FIB)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		waitFor(t, fmt.Sprintf("rep %d: fib in sync", rep), func() error {
			st, err := sc.get(ctx)
			if err == nil && !st.FIB.InSync {
				err = fmt.Errorf("fib status %+v", st.FIB)
			}
			return err
		})
	}
	t.Logf("repetitions with an implicit withdrawal (a looped announcement): IPv4 %d, IPv6 %d of %d", looped[true], looped[false], reps)
	if reps >= 20 && (looped[true] == 0 || looped[false] == 0) {
		t.Errorf("the looped re-announcement never happened for a family; the test did not cover the bug")
	}
}

func kernelRoutes(p string) []netlink.Route {
	rs, _ := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
	var out []netlink.Route
	for _, r := range rs {
		if r.Dst != nil && r.Dst.String() == p {
			out = append(out, r)
		}
	}
	return out
}

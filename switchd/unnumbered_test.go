package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/bgp"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// unnumberedNode is one end of TestUnnumberedPairPrivileged.
type unnumberedNode struct {
	name     string
	asn      int
	id       string         // router-id, also its IPv4 loopback
	lo6      string         // its IPv6 loopback
	prefixes []netip.Prefix // originated (blackholes but the loopbacks)
	// neighbor is the BGP neighbor's JSON: an interface neighbor, or a
	// neighbor by link-local address with local-address naming eth0.
	neighbor func(peerAS int) string
}

// unnumberedConfig is a node's config: its loopbacks and prefixes as local
// aggregates announced over one unnumbered session on eth0.
func unnumberedConfig(n unnumberedNode, peerAS int) string {
	var aggs []string
	for _, p := range append([]netip.Prefix{netip.MustParsePrefix(n.id + "/32"), netip.MustParsePrefix(n.lo6 + "/128")}, n.prefixes...) {
		aggs = append(aggs, fmt.Sprintf(`{"prefix": %q, "config": {"prefix": %q}}`, p, p))
	}
	var tables, conns []string
	for _, af := range []string{"IPV4", "IPV6"} {
		for _, pr := range []string{"LOCAL_AGGREGATE", "BGP"} {
			tables = append(tables, fmt.Sprintf(`{"protocol": "openconfig-policy-types:%s", "address-family": "openconfig-types:%s",
				"config": {"protocol": "openconfig-policy-types:%s", "address-family": "openconfig-types:%s"}}`, pr, af, pr, af))
		}
		c := fmt.Sprintf(`"src-protocol": "openconfig-policy-types:LOCAL_AGGREGATE", "dst-protocol": "openconfig-policy-types:BGP", "address-family": "openconfig-types:%s"`, af)
		conns = append(conns, fmt.Sprintf(`{%s, "config": {%s}}`, c, c))
	}
	return fmt.Sprintf(`{"openconfig-network-instance:network-instances": {"network-instance": [{
  "name": "DEFAULT", "config": {"name": "DEFAULT", "type": "openconfig-network-instance-types:DEFAULT_INSTANCE"},
  "tables": {"table": [%s]},
  "table-connections": {"table-connection": [%s]},
  "protocols": {"protocol": [
    {"identifier": "openconfig-policy-types:LOCAL_AGGREGATE", "name": "DEFAULT",
     "config": {"identifier": "openconfig-policy-types:LOCAL_AGGREGATE", "name": "DEFAULT"},
     "local-aggregates": {"aggregate": [%s]}},
    {"identifier": "openconfig-policy-types:BGP", "name": "BGP",
     "config": {"identifier": "openconfig-policy-types:BGP", "name": "BGP"},
     "bgp": {
       "global": {"config": {"as": %d, "router-id": %q},
         "afi-safis": {"afi-safi": [
           {"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST", "config": {"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST", "enabled": true}},
           {"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST", "config": {"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST", "enabled": true}}]}},
       "peer-groups": {"peer-group": [{"peer-group-name": "fabric", "config": {"peer-group-name": "fabric", "peer-as": %d},
         "timers": {"config": {"hold-time": 3, "keepalive-interval": 1, "connect-retry": 1}},
         "apply-policy": {"config": {"default-import-policy": "ACCEPT_ROUTE", "default-export-policy": "ACCEPT_ROUTE"}}}]},
       %s}}]}}]}}
`, strings.Join(tables, ","), strings.Join(conns, ","), strings.Join(aggs, ","), n.asn, n.id, peerAS, n.neighbor(peerAS))
}

// TestUnnumberedPairPrivileged runs two switchd over a veth whose ends
// have nothing but their kernel-made IPv6 link-local addresses. One
// configures its neighbor by interface alone (bgp/interface-neighbors:
// the peer's address is discovered), the other by the peer's link-local
// address and the interface as local-address (OpenConfig's own leaves).
// A runs before the link exists and finds it, and its peer, when they
// appear. The session comes up, IPv4 and IPv6 prefixes cross it both
// ways, each kernel holds the other's IPv4 prefixes via the other's IPv6
// link-local address on eth0 (RFC 8950), and the loopbacks reach each
// other over IPv4 and IPv6; then B's link-local address changes, and A's
// routes follow it.
func TestUnnumberedPairPrivileged(t *testing.T) {
	ns.Privileged(t)
	bin := simtest.SwitchdBinary(t)
	ctx := t.Context()
	a, b := ns.NewT(t, "unnA"), ns.NewT(t, "unnB")
	var llA, llB netip.Addr // the ends' link-local addresses, once the link exists
	nodeA := unnumberedNode{name: "A", asn: 65101, id: "10.255.0.1", lo6: "fd00:255::1",
		prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd01:1::/64")},
		neighbor: func(int) string {
			return `"switchd:interface-neighbors": {"interface-neighbor": [{"interface": "eth0",
			  "config": {"interface": "eth0", "peer-group": "fabric"}}]}`
		}}
	nodeB := unnumberedNode{name: "B", asn: 65102, id: "10.255.0.2", lo6: "fd00:255::2",
		prefixes: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("fd01:2::/64")},
		neighbor: func(int) string {
			return fmt.Sprintf(`"neighbors": {"neighbor": [{"neighbor-address": %q,
			  "config": {"neighbor-address": %q, "peer-group": "fabric"},
			  "transport": {"config": {"local-address": "eth0"}}}]}`, llA, llA)
		}}
	var sockA string
	start := func(n *ns.NS, node unnumberedNode, peer int) {
		// The loopbacks are the only addresses besides link-locals.
		for _, p := range []string{node.id + "/32", node.lo6 + "/128"} {
			if err := n.AddAddr("lo", netip.MustParsePrefix(p)); err != nil {
				t.Fatal(err)
			}
		}
		dir := t.TempDir()
		cfg := filepath.Join(dir, "switchd.json")
		if err := os.WriteFile(cfg, []byte(unnumberedConfig(node, peer)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCheck(bin, cfg); err != nil {
			t.Fatalf("%s's config refused: %v\n%s", node.name, err, out)
		}
		if n == a {
			sockA = filepath.Join(dir, "switchd.sock")
		}
		d := startSwitchd(t, n, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"),
			"--gnmi-socket", filepath.Join(dir, "gnmi.sock"), "--state-dir", filepath.Join(dir, "state"))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s's log:\n%s", node.name, d.logs.String())
			}
		})
	}
	// A starts before its interface exists: it finds it, and its peer,
	// when they appear.
	start(a, nodeA, nodeB.asn)
	waitFor(t, 30*time.Second, "A's daemon answers", func() error {
		_, err := apiclient.GetStatus(ctx, sockA)
		return err
	})
	if err := ns.Veth(a, "eth0", b, "eth0"); err != nil {
		t.Fatal(err)
	}
	linkLocal := func(n *ns.NS) netip.Addr {
		var ll netip.Addr
		waitFor(t, 30*time.Second, n.Name+": eth0's link-local address usable", func() error {
			out, err := n.Run(ctx, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
			if err != nil {
				return err
			}
			if strings.Contains(out, "tentative") {
				return fmt.Errorf("still tentative: %s", out)
			}
			m := regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/64`).FindStringSubmatch(out)
			if m == nil {
				return fmt.Errorf("none in %q", out)
			}
			ll = netip.MustParseAddr(m[1])
			return nil
		})
		return ll
	}
	llA, llB = linkLocal(a), linkLocal(b)
	start(b, nodeB, nodeA.asn)

	// Each side's kernel: the other's prefixes, IPv4 ones via inet6.
	expect := func(n *ns.NS, peer netip.Addr, other unnumberedNode) {
		want := append([]netip.Prefix{netip.MustParsePrefix(other.id + "/32"), netip.MustParsePrefix(other.lo6 + "/128")}, other.prefixes...)
		waitFor(t, 90*time.Second, n.Name+" has "+other.name+"'s prefixes via "+peer.String(), func() error {
			for _, p := range want {
				fam := "-4"
				via := "via inet6 " + peer.String() + " dev eth0 "
				if p.Addr().Is6() {
					fam, via = "-6", "via "+peer.String()+" dev eth0 "
				}
				out, err := n.Run(ctx, "ip", fam, "route", "show", p.String(), "proto", "77")
				if err != nil {
					return err
				}
				if !strings.Contains(out+" ", via) {
					return fmt.Errorf("route %v: %q, want %q", p, strings.TrimSpace(out), via)
				}
			}
			return nil
		})
	}
	expect(b, llA, nodeA)
	expect(a, llB, nodeB)
	// The daemon's status names the neighbor as the speaker does: the
	// peer's link-local address with the interface as zone.
	waitFor(t, 30*time.Second, "A's status shows its neighbor established", func() error {
		st, err := apiclient.GetStatus(ctx, sockA)
		if err != nil {
			return err
		}
		for _, nb := range st.BGP.Neighbors {
			if nb.Address == llB.WithZone("eth0").String() && strings.EqualFold(nb.State, "established") {
				return nil
			}
		}
		return fmt.Errorf("neighbors %+v, want %v established", st.BGP.Neighbors, llB.WithZone("eth0"))
	})

	// Traffic between the loopbacks: IPv4 over IPv6 next hops both ways.
	ping := func() {
		for _, dst := range []struct{ from, to string }{{nodeB.id, nodeA.id}, {nodeB.lo6, nodeA.lo6}} {
			waitFor(t, 30*time.Second, "ping "+dst.to+" from "+dst.from, func() error {
				out, err := b.Run(ctx, "ping", "-c", "1", "-W", "1", "-I", dst.from, dst.to)
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		}
	}
	ping()

	// B's link-local address changes (say, its port was replaced): A
	// discovers the new one and its routes follow; B's session now binds
	// to its new address.
	newB := netip.MustParseAddr("fe80::b:b")
	for _, argv := range [][]string{
		{"ip", "-6", "addr", "add", newB.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-6", "addr", "del", llB.String() + "/64", "dev", "eth0"},
	} {
		if out, err := b.Run(ctx, argv...); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	expect(a, newB, nodeB)
	ping()
}

// runCheck runs `switchd check` on a config.
func runCheck(bin, cfg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "check", "--config", cfg).CombinedOutput()
	return string(out), err
}

// TestSimUnnumberedConfigsValid: in the unnumbered variant of the default
// fabric every generated config loads; a spine or leaf has one unnumbered
// neighbor per fabric link (both families) and no address on those links,
// while host links keep their IPv4 and IPv6 neighbors and addresses.
func TestSimUnnumberedConfigsValid(t *testing.T) {
	f, err := sim.New(sim.Default(), sim.Options{Unnumbered: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		in := simConfig(t, f, n)
		unnumbered, numbered := 0, 0
		for _, nb := range in.BGP.Neighbors {
			if nb.Interface == "" {
				numbered++
				continue
			}
			unnumbered++
			if !slices.Equal(nb.Families, []bgp.Family{bgp.IPv4Unicast, bgp.IPv6Unicast}) {
				t.Errorf("%s: unnumbered neighbor on %s carries %v, want both families", n.Name, nb.Interface, nb.Families)
			}
		}
		wantU, wantN := 0, 0
		for _, i := range n.Interfaces {
			if i.Unnumbered {
				wantU++
			} else {
				wantN += 2
			}
		}
		if n.Role != sim.Role("host") && wantU == 0 {
			t.Errorf("%s: no unnumbered link", n.Name)
		}
		if unnumbered != wantU || numbered != wantN || n.Sessions() != wantU+wantN {
			t.Errorf("%s: %d unnumbered and %d numbered neighbors (%d sessions), want %d and %d", n.Name, unnumbered, numbered, n.Sessions(), wantU, wantN)
		}
		for _, ia := range f.Addresses(n) {
			for _, i := range n.Interfaces {
				if i.Name == ia.Name && i.Unnumbered && len(ia.Addrs) != 0 {
					t.Errorf("%s: unnumbered link %s has addresses %v", n.Name, i.Name, ia.Addrs)
				}
			}
		}
	}
}

// TestUnnumberedFabricPrivileged is the demo (the policy topology: the
// default fabric with labelled workloads) in its unnumbered variant:
// spine–leaf links carry only link-local addresses, every host reaches
// every other host over IPv4 and IPv6, the leaves' IPv4 routes through
// the spines have IPv6 link-local next hops in the kernel, a link going
// down and a leaf restarting are survived, and the workload policy still
// decides: web reaches db:5432 across the fabric, other does not.
func TestUnnumberedFabricPrivileged(t *testing.T) {
	ns.Privileged(t)
	topo, err := sim.LoadTopology("../sim/topologies/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo.Timers = fastTimers
	f := simtest.Start(t, topo, func(o *sim.Options) { o.Unnumbered = true })
	simtest.WaitConverged(t, f)
	ctx := context.Background()

	t.Run("FabricLinksLinkLocalOnly", func(t *testing.T) {
		for _, n := range f.Nodes() {
			for _, i := range n.Interfaces {
				if !i.Unnumbered {
					continue
				}
				out, err := f.Namespace(n.Name).Run(ctx, "ip", "-o", "addr", "show", "dev", i.Name)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(out, "inet ") || !strings.Contains(out, "inet6 fe80::") || strings.Contains(out, "scope global") {
					t.Errorf("%s %s: want only a link-local address:\n%s", n.Name, i.Name, out)
				}
			}
		}
	})
	t.Run("AddressesFromConfig", func(t *testing.T) { checkConfiguredAddresses(t, f) })
	t.Run("HostsReachEveryHost", func(t *testing.T) { hostsReachEveryHost(t, f) })
	t.Run("LeafIPv4RoutesViaLinkLocal", func(t *testing.T) {
		for _, leaf := range nodesWithRole(f, sim.Role("leaf")) {
			// What a leaf learns through the spines: every loopback
			// but its own and its hosts'.
			local := map[string]bool{leaf.Name: true}
			for _, i := range leaf.Interfaces {
				if !i.Unnumbered {
					local[i.Peer] = true
				}
			}
			for _, o := range f.Nodes() {
				if local[o.Name] {
					continue
				}
				out, err := f.Namespace(leaf.Name).Run(ctx, "ip", "-4", "route", "show", o.Loopback4.String()+"/32", "proto", "77")
				if err != nil {
					t.Fatal(err)
				}
				vias := regexp.MustCompile(`via (inet6 )?(\S+)`).FindAllStringSubmatch(out, -1)
				if len(vias) == 0 {
					t.Errorf("%s: no switchd route to %s (%s): %q", leaf.Name, o.Name, o.Loopback4, out)
				}
				for _, v := range vias {
					if a, err := netip.ParseAddr(v[2]); v[1] == "" || err != nil || !a.IsLinkLocalUnicast() {
						t.Errorf("%s: route to %s via %s%s, want an IPv6 link-local next hop:\n%s", leaf.Name, o.Name, v[1], v[2], out)
					}
				}
				// Beyond the spines, ECMP over both of them.
				if want := len(nodesWithRole(f, sim.Role("spine"))); o.Role != sim.Role("spine") && len(vias) != want {
					t.Errorf("%s: route to %s has %d next hops, want %d (one per spine):\n%s", leaf.Name, o.Name, len(vias), want, out)
				}
			}
		}
	})
	t.Run("LinkDownAndBack", func(t *testing.T) {
		// leaf1 loses carrier on its link to spine1: it drops the
		// neighbor on that interface at once (no address names it on
		// the link), its route to leaf2 keeps spine2 only, hosts still
		// reach each other; back up, the session returns (the peer's
		// address is still known) and so does ECMP.
		leaf1, leaf2 := f.Node("leaf1"), f.Node("leaf2")
		// hops is from's route to to's loopback and its next hops.
		hops := func(from, to *sim.NodeInfo) (string, int, error) {
			out, err := f.Namespace(from.Name).Run(ctx, "ip", "-4", "route", "show", to.Loopback4.String()+"/32", "proto", "77")
			return out, strings.Count(out, "via inet6 fe80::"), err
		}
		if _, err := f.Exec(ctx, "leaf1", "ip", "link", "set", "spine1", "down"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "leaf1 drops its spine1 neighbor on carrier loss", func() error {
			b, err := os.ReadFile(leaf1.Log)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "carrier lost on spine1") {
				return errors.New("no drop logged")
			}
			return nil
		})
		// spine1 withdraws what it learned from leaf1 when its end
		// loses carrier too; leaf2 then sends through spine2 only.
		for _, p := range [][2]*sim.NodeInfo{{leaf1, leaf2}, {leaf2, leaf1}} {
			waitFor(t, 30*time.Second, p[0].Name+" routes to "+p[1].Name+" via spine2 only", func() error {
				out, n, err := hops(p[0], p[1])
				if err != nil || n != 1 || strings.Contains(out, "dev spine1") {
					return fmt.Errorf("%v: %q", err, out)
				}
				return nil
			})
		}
		hostsReachEveryHost(t, f)
		if _, err := f.Exec(ctx, "leaf1", "ip", "link", "set", "spine1", "up"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "leaf1 routes to leaf2 over both spines again", func() error {
			out, n, err := hops(leaf1, leaf2)
			if err != nil || n != 2 {
				return fmt.Errorf("%v: %q", err, out)
			}
			return nil
		})
		simtest.WaitConverged(t, f)
	})
	// A restarted leaf waits for its unnumbered neighbors to be
	// discovered and to finish their initial update before it sweeps the
	// routes it adopted: not one packet is lost.
	t.Run("LeafRestartLosesNoPackets", func(t *testing.T) { restartLeafUnderPings(t, f, syscall.SIGKILL) })
	t.Run("DemoPolicy", func(t *testing.T) {
		add := func(host, name string) sim.Workload {
			w, err := f.AddWorkload(ctx, host, name)
			if err != nil {
				t.Fatal(err)
			}
			return *w
		}
		db, other, web := add("host2", "w1"), add("host3", "w1"), add("host4", "w1")
		l, err := f.ListenWorkload(db, sim.PolicyPort)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		const dial = 2 * time.Second
		waitFor(t, 30*time.Second, "web (host4) reaches db (host2):5432 over IPv4 and IPv6", func() error {
			if err := f.ConnectWorkload(web, db, 4, sim.PolicyPort, dial); err != nil {
				return err
			}
			return f.ConnectWorkload(web, db, 6, sim.PolicyPort, dial)
		})
		waitFor(t, 30*time.Second, "other (host3) reaches web (host4), which no policy selects", func() error {
			return f.PingWorkload(ctx, other, web, 4)
		})
		for _, fam := range []int{4, 6} {
			if err := f.ConnectWorkload(other, db, fam, sim.PolicyPort, dial); err == nil {
				t.Errorf("other reached db:%d over IPv%d; the policy allows only role == web", sim.PolicyPort, fam)
			}
		}
	})
}

// simConfig is node n's generated config, loaded.
func simConfig(t *testing.T, f *sim.Fabric, n *sim.NodeInfo) *config.Intent {
	t.Helper()
	b, err := f.NodeConfig(n.Name)
	if err != nil {
		t.Fatal(err)
	}
	in, err := config.Parse(b, n.Name+".json")
	if err != nil {
		t.Fatalf("%s: generated config rejected: %v", n.Name, err)
	}
	return in
}

// hostsReachEveryHost pings between every pair of hosts' loopbacks over
// IPv4 and IPv6 and fails with the matrix if one gets no reply.
func hostsReachEveryHost(t *testing.T, f *sim.Fabric) {
	t.Helper()
	m := f.Matrix(context.Background())
	if n := m.Failures(); n != 0 {
		var b strings.Builder
		m.Print(&b)
		t.Fatalf("%d host pairs cannot reach each other:\n%s", n, b.String())
	}
}

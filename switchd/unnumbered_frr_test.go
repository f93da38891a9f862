package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// TestUnnumberedFRRPrivileged peers switchd, its neighbor given by
// interface alone, with FRR 8.4's `neighbor eth0 interface` over a veth
// with only link-local addresses. Each side discovers the other: switchd
// from FRR's router advertisements or echo replies, FRR from switchd's
// router advertisements (FRR learns unnumbered peers from RAs only). The
// prefixes cross both ways, and each kernel holds the other's IPv4
// prefix via inet6 the other's link-local address.
func TestUnnumberedFRRPrivileged(t *testing.T) {
	ns.Privileged(t)
	for _, bin := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("FRR not installed: %v", err)
		}
	}
	bin := simtest.SwitchdBinary(t)
	ctx := t.Context()
	a, b := ns.NewT(t, "unnSwd"), ns.NewT(t, "unnFRR")
	if err := ns.Veth(a, "eth0", b, "eth0"); err != nil {
		t.Fatal(err)
	}
	const frrAS = 65200
	sw := unnumberedNode{name: "switchd", asn: 65101, id: "10.255.0.1", lo6: "fd00:255::1",
		prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd01:1::/64")},
		neighbor: func(int) string {
			return `"switchd:interface-neighbors": {"interface-neighbor": [{"interface": "eth0",
			  "config": {"interface": "eth0", "peer-group": "fabric"}}]}`
		}}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, []byte(unnumberedConfig(sw, frrAS)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startSwitchd(t, a, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"),
		"--gnmi-socket", filepath.Join(dir, "gnmi.sock"), "--state-dir", filepath.Join(dir, "state"))
	frrDir := startUnnumberedFRR(t, b, frrAS)
	t.Cleanup(func() {
		if t.Failed() {
			st, err := apiclient.GetStatus(context.Background(), filepath.Join(dir, "switchd.sock"))
			t.Logf("switchd's log:\n%s\nneighbors: %+v %v", d.logs.String(), st.BGP.Neighbors, err)
			routes, _ := a.Run(context.Background(), "ip", "-6", "route")
			t.Logf("switchd's IPv6 routes:\n%s", routes)
			out, _ := exec.Command("vtysh", "--vty_socket", frrDir, "-c", "show bgp summary", "-c", "show bgp ipv4 unicast", "-c", "show bgp ipv6 unicast", "-c", "show bgp ipv6 unicast neighbors eth0 advertised-routes").CombinedOutput()
			t.Logf("FRR:\n%s", out)
		}
	})

	ll := func(n *ns.NS) string {
		out, err := n.Run(ctx, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(out)
		for i, w := range f {
			if w == "inet6" && i+1 < len(f) {
				return strings.Split(f[i+1], "/")[0]
			}
		}
		t.Fatalf("%s: no link-local address on eth0: %q", n.Name, out)
		return ""
	}
	// routeVia waits for the route to p that proto (switchd's 77, FRR's
	// bgp) installed to go via via.
	routeVia := func(n *ns.NS, p, proto, via string) {
		waitFor(t, 90*time.Second, fmt.Sprintf("%s: %s %s", n.Name, p, via), func() error {
			fam := "-4"
			if strings.Contains(p, ":") {
				fam = "-6"
			}
			out, err := n.Run(ctx, "ip", fam, "route", "show", p, "proto", proto)
			if err != nil {
				return err
			}
			if !strings.Contains(out+" ", via) {
				return fmt.Errorf("%q", strings.TrimSpace(out))
			}
			return nil
		})
	}
	llA, llB := ll(a), ll(b)
	routeVia(a, "10.9.0.0/24", "77", "via inet6 "+llB+" dev eth0 ")
	routeVia(a, "fd09::/64", "77", "via "+llB+" dev eth0 ")
	routeVia(b, "10.1.0.0/24", "bgp", "via inet6 "+llA+" dev eth0 ")
	routeVia(b, "fd01:1::/64", "bgp", "via "+llA+" dev eth0 ")
}

// startUnnumberedFRR runs zebra and bgpd in n: AS as, a session by
// interface on eth0 for both families, announcing 10.9.0.0/24 and
// fd09::/64. It returns the directory of their vty sockets.
func startUnnumberedFRR(t *testing.T, n *ns.NS, as int) string {
	t.Helper()
	// The daemons drop to user frr, which must own their directory.
	dir, err := os.MkdirTemp("", "frr-unn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := func(name string) string { return filepath.Join(dir, name) }
	confs := map[string]string{
		"zebra.conf": "hostname frr\n",
		"bgpd.conf": fmt.Sprintf(`hostname frr
router bgp %d
 bgp router-id 10.255.0.9
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor eth0 interface remote-as external
 neighbor eth0 timers 1 3
 neighbor eth0 timers connect 1
 neighbor eth0 advertisement-interval 0
 address-family ipv4 unicast
  network 10.9.0.0/24
 exit-address-family
 address-family ipv6 unicast
  network fd09::/64
  neighbor eth0 activate
 exit-address-family
`, as),
	}
	for name, text := range confs {
		if err := os.WriteFile(p(name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "frr:frr", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	// Both daemonize; their PIDs are in the pid files (ns.NewT kills
	// whatever is left in the namespace as well).
	t.Cleanup(func() {
		for _, d := range []string{"bgpd", "zebra"} {
			if raw, err := os.ReadFile(p(d + ".pid")); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	common := []string{"-d", "-u", "frr", "-g", "frr", "-P", "0", "-z", p("zserv.api"), "--vty_socket", dir}
	for _, d := range []string{"zebra", "bgpd"} {
		argv := append([]string{"/usr/lib/frr/" + d, "-f", p(d + ".conf"), "-i", p(d + ".pid"), "--log", "file:" + p(d+".log")}, common...)
		if out, err := n.Run(t.Context(), argv...); err != nil {
			t.Fatalf("start %s: %v\n%s", d, err, out)
		}
		if d == "zebra" {
			waitFor(t, 30*time.Second, "zebra's zserv socket", func() error {
				_, err := os.Stat(p("zserv.api"))
				return err
			})
		}
	}
	return dir
}

package cni

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
)

func parseResult(t *testing.T, out string) *types100.Result {
	t.Helper()
	r, err := types100.NewResult([]byte(out))
	if err != nil {
		t.Fatalf("parse CNI result %q: %v", out, err)
	}
	res, err := types100.GetResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCnitoolPrivileged drives the plugin with the reference CNI client:
// ADD gives a reachable workload, CHECK passes and catches drift, a
// repeated ADD returns the same result, DEL removes veth, route, record
// and allocation, and DEL of unknown containers succeeds.
func TestCnitoolPrivileged(t *testing.T) {
	ctx := context.Background()
	tool, plugin := cnitool(t), buildPlugin(t)
	d := newDaemon(t)
	net := netName(t, "sw")
	confDir := netconf(t, map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket,
		"labels": map[string]string{"tier": "web"}, "capabilities": map[string]bool{"ips": true}})
	cnitool := func(cmd string, wl *ns.NS, env ...string) (string, error) {
		return runCnitool(ctx, t, tool, confDir, plugin, cmd, net, wl.Path(), env...)
	}
	wl := ns.NewT(t, "wl1")

	out, err := cnitool("add", wl)
	if err != nil {
		t.Fatal(err)
	}
	res := parseResult(t, out)
	if res.CNIVersion != "1.1.0" || len(res.Interfaces) != 2 || res.Interfaces[1].Name != "eth0" ||
		res.Interfaces[1].Sandbox != wl.Path() || res.Interfaces[0].Sandbox != "" || res.Interfaces[0].Mac != host.HostMAC.String() {
		t.Errorf("result interfaces: %s", out)
	}
	wantIPs := []string{"10.10.0.0/32 gw 169.254.1.1", "fd00:10::/128 gw fe80::1"}
	wantRoutes := []string{"0.0.0.0/0 gw 169.254.1.1", "::/0 gw fe80::1"}
	var gotIPs, gotRoutes []string
	for _, ip := range res.IPs {
		if ip.Interface == nil || *ip.Interface != 1 {
			t.Errorf("IP %v not on interface 1 (the workload's)", ip)
		}
		gotIPs = append(gotIPs, ip.Address.String()+" gw "+ip.Gateway.String())
	}
	for _, r := range res.Routes {
		gotRoutes = append(gotRoutes, r.Dst.String()+" gw "+r.GW.String())
	}
	if strings.Join(gotIPs, ",") != strings.Join(wantIPs, ",") || strings.Join(gotRoutes, ",") != strings.Join(wantRoutes, ",") {
		t.Errorf("result IPs %v routes %v, want %v %v", gotIPs, gotRoutes, wantIPs, wantRoutes)
	}
	eps := d.m.List()
	if len(eps) != 1 {
		t.Fatalf("endpoints after ADD: %+v", eps)
	}
	ep := eps[0]
	id := ep.ID
	if !strings.HasPrefix(id, "cnitool-") || ep.Labels[NetworkLabel] != net || ep.Labels["tier"] != "web" {
		t.Errorf("endpoint %+v: want a cnitool container ID and labels %s=%s, tier=web", ep, NetworkLabel, net)
	}

	// Reachable both ways: host → workload over its /32 and /128, workload
	// → host's loopback addresses via the link-local gateways.
	for _, a := range []string{"10.10.0.0", "fd00:10::"} {
		if err := ping(ctx, d.host, a); err != nil {
			t.Errorf("ping workload %s from the host: %v", a, err)
		}
	}
	for _, a := range []netip.Addr{hostLo4, hostLo6} {
		if err := ping(ctx, wl, a.String()); err != nil {
			t.Errorf("ping host %s from the workload: %v", a, err)
		}
	}

	if _, err := cnitool("check", wl); err != nil {
		t.Errorf("CHECK after ADD: %v", err)
	}
	again, err := cnitool("add", wl)
	if err != nil || again != out {
		t.Errorf("repeated ADD = %q, %v; want the first result %q", again, err, out)
	}

	// CHECK catches drift: the workload loses its IPv4 address.
	eth0, err := wl.Handle().LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := wl.Handle().AddrDel(eth0, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix("10.10.0.0/32"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := cnitool("check", wl); err == nil || !strings.Contains(err.Error(), "10.10.0.0/32") {
		t.Errorf("CHECK after the address was removed: %v, want an error naming 10.10.0.0/32", err)
	}

	if _, err := cnitool("del", wl); err != nil {
		t.Fatal(err)
	}
	if v := d.veths(t); len(v) != 0 {
		t.Errorf("veths after DEL: %v", v)
	}
	if links, _ := wl.Handle().LinkList(); len(links) != 1 {
		t.Errorf("workload has %d links after DEL, want only lo", len(links))
	}
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if r := d.route(t, a); r != "" {
			t.Errorf("route to %v after DEL: %s", a, r)
		}
	}
	if r := d.records(t); len(r) != 0 {
		t.Errorf("records after DEL: %v", r)
	}
	if _, ok := d.m.Get(id); ok || len(d.m.List()) != 0 {
		t.Errorf("endpoint still known after DEL: %+v", d.m.List())
	}
	if _, err := cnitool("del", wl); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if _, err := cnitool("del", ns.NewT(t, "never")); err != nil {
		t.Errorf("DEL of a container never added: %v", err)
	}

	// The addresses are free again; a fixed one through the ips capability.
	wl2 := ns.NewT(t, "wl2")
	out, err = cnitool("add", wl2, `CAP_ARGS={"ips":["10.10.7.7/32"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if res := parseResult(t, out); len(res.IPs) != 2 || res.IPs[0].Address.IP.String() != "10.10.7.7" || res.IPs[1].Address.IP.String() != "fd00:10::" {
		t.Errorf("ADD with runtimeConfig ips 10.10.7.7: %s", out)
	}
	if err := ping(ctx, d.host, "10.10.7.7"); err != nil {
		t.Errorf("ping fixed address: %v", err)
	}
}

// TestDelMissingNetnsPrivileged: DEL succeeds and cleans up when the
// workload's namespace is already gone, as the spec requires.
func TestDelMissingNetnsPrivileged(t *testing.T) {
	ctx := context.Background()
	tool, plugin := cnitool(t), buildPlugin(t)
	d := newDaemon(t)
	net := netName(t, "gone")
	confDir := netconf(t, map[string]any{"cniVersion": "1.0.0", "name": net, "type": "switchd", "socket": d.socket})
	wl, err := ns.New(ns.RunPrefix() + "-gone")
	if err != nil {
		t.Fatal(err)
	}
	path := wl.Path()
	t.Cleanup(func() { wl.Delete() })
	if _, err := runCnitool(ctx, t, tool, confDir, plugin, "add", net, path); err != nil {
		t.Fatal(err)
	}
	if err := wl.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := runCnitool(ctx, t, tool, confDir, plugin, "del", net, path); err != nil {
		t.Fatalf("DEL with the netns gone: %v", err)
	}
	if len(d.m.List()) != 0 || len(d.records(t)) != 0 || len(d.veths(t)) != 0 {
		t.Errorf("left after DEL: endpoints %+v, records %v, veths %v", d.m.List(), d.records(t), d.veths(t))
	}
	// And a runtime that passes no netns at all (allowed for DEL).
	if _, e := execPlugin(t, plugin, "DEL", "c-none", "", "eth0", confBytes(net, d.socket)); e != nil {
		t.Errorf("DEL without CNI_NETNS: %+v", e)
	}
}

func confBytes(net, socket string) []byte {
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": socket})
	return b
}

// TestBadInputPrivileged: each kind of bad input gets its CNI error code
// and a message naming what was wrong, and leaves nothing behind.
func TestBadInputPrivileged(t *testing.T) {
	ctx := context.Background()
	tool, plugin := cnitool(t), buildPlugin(t)
	// One IPv4 address in the pool, to exhaust it.
	d := newDaemon(t, host.Pool{Prefix: netip.MustParsePrefix("10.20.0.0/32")})
	net := netName(t, "bad")
	good := confBytes(net, d.socket)
	wl1, wl2 := ns.NewT(t, "bad1"), ns.NewT(t, "bad2")
	if _, e := execPlugin(t, plugin, "ADD", "first", wl1.Path(), "eth0", good); e != nil {
		t.Fatalf("first ADD: %+v", e)
	}
	noDaemon := confBytes(net, d.socket+".none")
	missing := "/run/netns/" + ns.RunPrefix() + "-missing"

	cases := []struct {
		name        string
		netns, conf string
		code        uint
		want        string
	}{
		{"malformed config", wl2.Path(), `{"cniVersion": "1.1.0", "name": "x", "type": "switchd",`, 6, "network config"},
		{"config with ipam", wl2.Path(), `{"cniVersion": "1.1.0", "name": "x", "type": "switchd", "ipam": {"type": "host-local"}}`, 2, "ipam"},
		{"relative socket", wl2.Path(), `{"cniVersion": "1.1.0", "name": "x", "type": "switchd", "socket": "run/s.sock"}`, 7, "run/s.sock"},
		{"bad timeout", wl2.Path(), `{"cniVersion": "1.1.0", "name": "x", "type": "switchd", "timeout": "soon"}`, 7, "soon"},
		{"two IPv4 in ips", wl2.Path(), `{"cniVersion": "1.1.0", "name": "x", "type": "switchd", "runtimeConfig": {"ips": ["10.20.0.1", "10.20.0.2"]}}`, 7, "more than one"},
		{"missing netns", missing, string(good), 3, missing},
		{"exhausted pool", wl2.Path(), string(good), endpointapi.CodePoolExhausted, "10.20.0.0/32"},
		{"daemon not running", wl2.Path(), string(noDaemon), 11, d.socket + ".none"},
	}
	for _, tc := range cases {
		_, e := execPlugin(t, plugin, "ADD", "c2", tc.netns, "eth0", []byte(tc.conf))
		if e == nil {
			t.Errorf("%s: ADD succeeded", tc.name)
			continue
		}
		if e.Code != tc.code || !strings.Contains(e.Msg+e.Details, tc.want) {
			t.Errorf("%s: error %+v, want code %d and %q in it", tc.name, e, tc.code, tc.want)
		}
	}
	// Through cnitool too, as a runtime would see them (it prints the
	// message, not the code).
	confDir := netconf(t, map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket})
	if _, err := runCnitool(ctx, t, tool, confDir, plugin, "add", net, missing); err == nil || !strings.Contains(err.Error(), "network namespace does not exist") {
		t.Errorf("cnitool ADD into a missing netns: %v", err)
	}
	if _, err := runCnitool(ctx, t, tool, confDir, plugin, "add", net, wl2.Path()); err == nil || !strings.Contains(err.Error(), "address pool exhausted") {
		t.Errorf("cnitool ADD with the pool exhausted: %v", err)
	}
	badDir := netconf(t, map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket + ".none"})
	if _, err := runCnitool(ctx, t, tool, badDir, plugin, "add", net, wl2.Path()); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("cnitool ADD without a daemon: %v", err)
	}
	if _, err := runCnitool(ctx, t, tool, badDir, plugin, "status", net, wl2.Path()); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("cnitool STATUS without a daemon: %v", err)
	}
	if _, err := runCnitool(ctx, t, tool, confDir, plugin, "status", net, wl2.Path()); err != nil {
		t.Errorf("cnitool STATUS with the daemon: %v", err)
	}

	// Nothing of the failed ADDs remains: only the first endpoint.
	if eps := d.m.List(); len(eps) != 1 || eps[0].ID != "first/eth0" {
		t.Errorf("endpoints after failed ADDs: %+v", eps)
	}
	if r := d.records(t); len(r) != 1 {
		t.Errorf("records after failed ADDs: %v", r)
	}
	if v := d.veths(t); len(v) != 1 {
		t.Errorf("veths after failed ADDs: %v", v)
	}
	if links, _ := wl2.Handle().LinkList(); len(links) != 1 {
		t.Errorf("workload of the failed ADDs has %d links, want only lo", len(links))
	}
	// Freeing the one address lets the next ADD through.
	if _, e := execPlugin(t, plugin, "DEL", "first", wl1.Path(), "eth0", good); e != nil {
		t.Fatalf("DEL: %+v", e)
	}
	if _, e := execPlugin(t, plugin, "ADD", "c2", wl2.Path(), "eth0", good); e != nil {
		t.Errorf("ADD after DEL freed the address: %+v", e)
	}
}

// TestGCPrivileged: GC removes this network's endpoints that are not in
// the runtime's valid attachments, and nothing else.
func TestGCPrivileged(t *testing.T) {
	plugin := buildPlugin(t)
	d := newDaemon(t)
	net := netName(t, "gc")
	wl1, wl2, wl3 := ns.NewT(t, "gc1"), ns.NewT(t, "gc2"), ns.NewT(t, "gc3")
	conf := confBytes(net, d.socket)
	for _, c := range []struct{ id, netns string }{{"keep", wl1.Path()}, {"stale", wl2.Path()}} {
		if _, e := execPlugin(t, plugin, "ADD", c.id, c.netns, "eth0", conf); e != nil {
			t.Fatal(e)
		}
	}
	// An endpoint of someone else (the sim, another network): no label.
	if _, err := d.client.AddContainer(context.Background(), endpointapi.ContainerAdd{ContainerID: "other", Netns: wl3.Path()}); err != nil {
		t.Fatal(err)
	}
	gc, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket,
		"cni.dev/valid-attachments": []map[string]string{{"containerID": "keep", "ifname": "eth0"}}})
	if _, e := execPlugin(t, plugin, "GC", "", "", "", gc); e != nil {
		t.Fatalf("GC: %+v", e)
	}
	var ids []string
	for _, ep := range d.m.List() {
		ids = append(ids, ep.ID)
	}
	if strings.Join(ids, ",") != "keep/eth0,other/eth0" {
		t.Errorf("endpoints after GC: %v, want keep/eth0 and other/eth0", ids)
	}
}

func TestParseConf(t *testing.T) {
	c, err := parseConf([]byte(`{"cniVersion": "1.1.0", "name": "n", "type": "switchd", "runtimeConfig": {"ips": ["10.1.2.3/24", "fd00::7"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != endpointapi.DefaultSocket || c.ipv4 != netip.MustParseAddr("10.1.2.3") || c.ipv6 != netip.MustParseAddr("fd00::7") {
		t.Errorf("conf = %+v", c)
	}
	if _, err := parseConf([]byte(`{"name": "n", "labels": {"switchd.cni/network": "x"}}`)); err == nil || !strings.Contains(err.Error(), NetworkLabel) {
		t.Errorf("reserved label: %v", err)
	}
}

package cni

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
)

// TestAddressOutsidePoolsRefusedPrivileged: an ADD whose runtimeConfig.ips
// asks for an address in none of the daemon's pools is refused with CNI
// code 104 naming the address and the pools, through cnitool as a runtime
// runs it and through the plugin directly; no veth, record, route or
// allocation is created and nothing is announced.
func TestAddressOutsidePoolsRefusedPrivileged(t *testing.T) {
	ctx := context.Background()
	tool, plugin := cnitool(t), buildPlugin(t)
	d := newDaemon(t)
	net := netName(t, "fixed")
	confDir := netconf(t, map[string]any{"cniVersion": "1.1.0", "name": net, "type": "switchd", "socket": d.socket,
		"capabilities": map[string]bool{"ips": true}})
	wl := ns.NewT(t, "fixed")

	_, err := runCnitool(ctx, t, tool, confDir, plugin, "add", net, wl.Path(), `CAP_ARGS={"ips":["192.0.2.7"]}`)
	if err == nil || !strings.Contains(err.Error(), "address not allowed") || !strings.Contains(err.Error(), "192.0.2.7 is in no pool (10.10.0.0/16, fd00:10::/64)") {
		t.Errorf("cnitool ADD with runtimeConfig ips 192.0.2.7: %v, want an error naming the address and the pools", err)
	}
	for _, ips := range []string{`["192.0.2.7"]`, `["10.10.0.9", "2001:db8::7"]`} {
		conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": %q, "type": "switchd", "socket": %q, "runtimeConfig": {"ips": %s}}`, net, d.socket, ips)
		_, e := execPlugin(t, plugin, "ADD", "c1", wl.Path(), "eth0", []byte(conf))
		if e == nil || e.Code != endpointapi.CodeAddressNotAllowed || !strings.Contains(e.Details, "no pool (10.10.0.0/16, fd00:10::/64)") {
			t.Errorf("ADD with ips %s: %+v, want code %d naming the pools", ips, e, endpointapi.CodeAddressNotAllowed)
		}
	}

	if eps := d.m.List(); len(eps) != 0 {
		t.Errorf("endpoints after refused ADDs: %+v", eps)
	}
	if r := d.records(t); len(r) != 0 {
		t.Errorf("records after refused ADDs: %v", r)
	}
	if v := d.veths(t); len(v) != 0 {
		t.Errorf("veths after refused ADDs: %v", v)
	}
	if links, _ := wl.Handle().LinkList(); len(links) != 1 {
		t.Errorf("workload has %d links after refused ADDs, want only lo", len(links))
	}
	if r := d.route(t, netip.MustParseAddr("192.0.2.7")); r != "" {
		t.Errorf("route to 192.0.2.7 after the refused ADD: %s", r)
	}
	if adv, blocks := d.fib.advertised(), d.m.Blocks(); len(adv) != 0 || len(blocks) != 0 {
		t.Errorf("announced %v, blocks %v after refused ADDs, want nothing", adv, blocks)
	}
}

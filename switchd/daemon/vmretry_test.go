package daemon

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
)

// TestConfiguredVMTapLaterPrivileged: a configured VM whose tap the
// hypervisor makes only after switchd started is adopted by the VM retry,
// which is armed only while a VM waits (an idle host does not wake for
// it), so a retry that is never armed fails here.
func TestConfiguredVMTapLaterPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	// Last: the block's blackhole stays when the daemon exits (routes
	// outlive it by design); the next test in this namespace starts clean.
	t.Cleanup(func() {
		rs, _ := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
		for _, r := range rs {
			netlink.RouteDel(&r)
		}
	})
	dir := t.TempDir()
	_, sock := runDaemon(t, dir, hostConfig(t, dir, true))
	ctx := context.Background()
	c := &endpointapi.Client{Socket: sock, Timeout: 5 * time.Second}
	waitFor(t, "the daemon's endpoint API", func() error {
		l, err := c.List(ctx)
		if err == nil && len(l.Endpoints) > 0 {
			return fmt.Errorf("endpoints %v before the tap exists", l.Endpoints)
		}
		return err
	})
	addTap(t, "tap-vm1")
	if vm := waitVM(t, c); vm.HostIface != "tap-vm1" {
		t.Errorf("vm1 endpoint %+v, want it on tap-vm1", vm)
	}
}

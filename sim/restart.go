package sim

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// RestartGracefully restarts the node's routing daemon the way it does a
// BGP graceful restart (RFC 4724): the routes it installed stay in its
// kernel, its sessions end without a NOTIFICATION so that its peers keep
// its routes as stale, and it comes back saying it kept its forwarding
// state.
//
//   - BIRD: `birdc graceful restart` (BIRD closes its BGP sessions and
//     exits, leaving its kernel routes), then bird -R: the recovery, in
//     which its kernel protocols (graceful restart on, BirdConfig) sync
//     the kernel only once BGP has every peer's End-of-RIB.
//   - FRR: bgpd is killed and started again; zebra keeps bgpd's routes in
//     the kernel meanwhile, since bgpd registered as a graceful-restart
//     client (FRRConfig), and sweeps those bgpd does not bring back.
//   - switchd: killed and started again; it adopts its kernel routes and
//     restarts gracefully on any exit.
func (f *Fabric) RestartGracefully(ctx context.Context, node string) error {
	n, err := f.node(node)
	if err != nil {
		return err
	}
	if !f.Running(node) {
		return fmt.Errorf("graceful restart of %s: daemon is not running", node)
	}
	pid := f.PID(node)
	var extra []string
	switch n.Kind {
	case Bird:
		out, err := exec.CommandContext(ctx, "birdc", "-s", n.Socket, "graceful", "restart").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Graceful restart requested") {
			return fmt.Errorf("graceful restart of %s: birdc graceful restart: %v: %s", node, err, strings.TrimSpace(string(out)))
		}
		extra = []string{"-R"}
	default:
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("graceful restart of %s: kill %d: %w", node, pid, err)
		}
	}
	if left := f.waitGone(ctx, []int{pid}, Grace); len(left) > 0 {
		return fmt.Errorf("graceful restart of %s: pid %d did not exit", node, pid)
	}
	if err := f.start(n, extra...); err != nil {
		return err
	}
	return f.writeState()
}

package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim/ns"
)

// Grace is how long Down and Restart wait after SIGTERM before SIGKILL.
var Grace = 5 * time.Second

// BirdProtocol is the kernel route protocol BIRD installs with (RTPROT_BIRD).
const BirdProtocol = 12

// SwitchdProtocol is the kernel route protocol switchd marks its routes
// with. It is a documented constant of the product (README, design rules), which
// the simulator reads like any other user, not a Go import of fib.
const SwitchdProtocol = 77

// MainTable is the kernel's main routing table (RT_TABLE_MAIN), where
// switchd and BIRD install the routes the simulator counts.
const MainTable = 254

// process is a daemon this process started; done closes once it is reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// argv is the daemon command line of a node, run under ip netns exec.
func (f *Fabric) argv(n *NodeInfo) []string {
	if n.Kind == Bird {
		// In the foreground, so that the PID we record is BIRD's and
		// its log (stderr, see BirdConfig) goes to the node's log file.
		return []string{"bird", "-f", "-c", n.Config, "-s", n.Socket, "-P", filepath.Join(n.Dir, "bird.pid")}
	}
	if n.Kind == Frr {
		return frrArgv(n, "bgpd")
	}
	argv := []string{f.switchd, "run", "--config", n.Config, "--socket", n.Socket, "--state-dir", n.StateDir, "--gnmi-socket", n.GNMISocket}
	if n.DockerPlugins != "" {
		argv = append(argv, "--docker-socket", filepath.Join(n.DockerPlugins, "switchd.sock"))
	}
	return argv
}

// start runs the node's daemon in its namespace, in a session of its own
// (so that it outlives the CLI that started it and no terminal signal
// reaches it), logging to the node's log file.
func (f *Fabric) start(n *NodeInfo, extra ...string) error {
	if n.Kind == Frr {
		if err := f.startZebra(n); err != nil {
			return err
		}
	}
	os.Remove(n.Socket) // a stale socket from an earlier run
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %s: open log: %w", n.Name, err)
	}
	defer logf.Close()
	argv := append(f.argv(n), extra...)
	fmt.Fprintf(logf, "--- %s switchd sim: starting %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	// ip netns exec execs the daemon, so the PID is the daemon's.
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Namespace}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if f.Topology.Lean && n.Kind == Switchd {
		cmd.Env = append(os.Environ(), LeanEnv...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node %s: start %s: %w", n.Name, argv[0], err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	f.mu.Lock()
	n.PID = cmd.Process.Pid
	f.procs[n.Name] = p
	f.mu.Unlock()
	f.log.Info("started", "node", n.Name, "kind", n.Kind, "pid", n.PID, "namespace", n.Namespace)
	return nil
}

// Running reports whether the node's daemon is alive.
func (f *Fabric) Running(node string) bool {
	n := f.byName[node]
	if n == nil {
		return false
	}
	f.mu.Lock()
	pid, p := n.PID, f.procs[node]
	f.mu.Unlock()
	if p != nil && p.cmd.Process.Pid == pid {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return pid > 0 && pidInNamespace(pid, n.Namespace)
}

// PID is the recorded PID of the node's daemon (0 if none).
func (f *Fabric) PID(node string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.byName[node]; n != nil {
		return n.PID
	}
	return 0
}

// PIDs lists every daemon PID the fabric recorded.
func (f *Fabric) PIDs() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pids []int
	for _, n := range f.nodes {
		if n.PID > 0 {
			pids = append(pids, n.PID)
		}
	}
	return pids
}

// Kill sends sig to the node's daemon.
func (f *Fabric) Kill(node string, sig syscall.Signal) error {
	n, err := f.node(node)
	if err != nil {
		return err
	}
	if !f.Running(node) {
		return fmt.Errorf("signal %v to %s: daemon is not running", sig, node)
	}
	if err := syscall.Kill(f.PID(node), sig); err != nil {
		return fmt.Errorf("signal %v to %s (pid %d): %w", sig, node, n.PID, err)
	}
	return nil
}

// Reload makes the node's daemon re-read its config (switchd: SIGHUP;
// BIRD: birdc configure).
func (f *Fabric) Reload(ctx context.Context, node string) error {
	n, err := f.node(node)
	if err != nil {
		return err
	}
	if n.Kind == Bird {
		out, err := exec.CommandContext(ctx, "birdc", "-s", n.Socket, "configure").CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("Reconfigured")) {
			return fmt.Errorf("reload %s: birdc configure: %v: %s", node, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return f.Kill(node, syscall.SIGHUP)
}

// Stop ends the node's daemon: SIGTERM, SIGKILL after Grace.
func (f *Fabric) Stop(ctx context.Context, node string) error {
	if _, err := f.node(node); err != nil {
		return err
	}
	if !f.Running(node) {
		return nil
	}
	return f.stopPids(ctx, []int{f.PID(node)})
}

// Start starts the node's daemon again after Stop or a crash.
func (f *Fabric) Start(node string) error {
	n, err := f.node(node)
	if err != nil {
		return err
	}
	if f.Running(node) {
		return fmt.Errorf("start %s: daemon is running (pid %d)", node, f.PID(node))
	}
	if n.Kind == Switchd && f.switchd == "" {
		return fmt.Errorf("start %s: no switchd binary", node)
	}
	if err := f.start(n); err != nil {
		return err
	}
	return f.writeState()
}

// Restart stops the node's daemon and starts it again with its (possibly
// edited) config.
func (f *Fabric) Restart(ctx context.Context, node string) error {
	if err := f.Stop(ctx, node); err != nil {
		return err
	}
	return f.Start(node)
}

// stopPids sends SIGTERM to pids, SIGKILL to those left after Grace, and
// waits for them to be gone.
func (f *Fabric) stopPids(ctx context.Context, pids []int) error {
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	left := f.waitGone(ctx, pids, Grace)
	for _, pid := range left {
		f.log.Warn("did not exit after SIGTERM; killing", "pid", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if left = f.waitGone(ctx, left, 10*time.Second); len(left) > 0 {
		return fmt.Errorf("processes %v did not exit after SIGKILL", left)
	}
	return nil
}

// waitGone waits up to d for pids to exit and returns those still alive.
func (f *Fabric) waitGone(ctx context.Context, pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, pid := range pids {
			if f.alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left
		}
		time.Sleep(20 * time.Millisecond)
		pids = left
	}
}

// alive says whether pid still runs. Our own children count as gone once
// reaped; others (started by an earlier CLI run) once they are gone or a
// zombie waiting for a parent that may never reap them.
func (f *Fabric) alive(pid int) bool {
	f.mu.Lock()
	for _, p := range f.procs {
		if p.cmd.Process.Pid == pid {
			f.mu.Unlock()
			select {
			case <-p.done:
				return false
			default:
				return true
			}
		}
	}
	f.mu.Unlock()
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// pidInNamespace guards against a recorded PID that was reused by an
// unrelated process after a crash.
func pidInNamespace(pid int, name string) bool {
	want, err := os.Stat(filepath.Join(ns.Dir, name))
	if err != nil {
		return false
	}
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	return err == nil && os.SameFile(fi, want)
}

// Command returns a command running argv in the node's namespace.
func (f *Fabric) Command(ctx context.Context, node string, argv ...string) (*exec.Cmd, error) {
	n, err := f.node(node)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("exec in %s: no command", node)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Namespace}, argv...)...)
	cmd.Env = n.execEnv()
	return cmd, nil
}

// Exec runs argv in the node's namespace and returns its combined output;
// the error carries the output.
func (f *Fabric) Exec(ctx context.Context, node string, argv ...string) (string, error) {
	cmd, err := f.Command(ctx, node, argv...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("exec in %s: %s: %w: %s", node, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Ping sends pings from one node's loopback to another's, over IPv4
// (family 4) or IPv6 (6). The loopbacks are the only addresses the fabric
// advertises, so the source must be one too. It succeeds if a reply comes.
func (f *Fabric) Ping(ctx context.Context, from, to string, family int) error {
	src, err := f.node(from)
	if err != nil {
		return err
	}
	dst, err := f.node(to)
	if err != nil {
		return err
	}
	var s, d string
	switch family {
	case 4:
		s, d = src.Loopback4.String(), dst.Loopback4.String()
	case 6:
		s, d = src.Loopback6.String(), dst.Loopback6.String()
	default:
		return fmt.Errorf("ping %s to %s: bad family %d (want 4 or 6)", from, to, family)
	}
	_, err = f.Exec(ctx, from, "ping", fmt.Sprintf("-%d", family), "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", s, d)
	if err != nil {
		return fmt.Errorf("ping %s (%s) to %s (%s): %w", from, s, to, d, err)
	}
	return nil
}

// RouteProtocol is the kernel route protocol of the node's daemon.
func (n *NodeInfo) RouteProtocol() int {
	switch n.Kind {
	case Bird:
		return BirdProtocol
	case Frr:
		return FRRProtocol
	}
	return SwitchdProtocol
}

// Routes lists the routes the node's daemon installed in the main table
// of its namespace (IPv4 and IPv6).
func (f *Fabric) Routes(node string) ([]netlink.Route, error) {
	n, err := f.node(node)
	if err != nil {
		return nil, err
	}
	h := f.Namespace(node)
	if h == nil {
		return nil, fmt.Errorf("routes of %s: namespace %s is not there", node, n.Namespace)
	}
	filter := &netlink.Route{Protocol: netlink.RouteProtocol(n.RouteProtocol()), Table: MainTable}
	rs, err := h.Handle().RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", node, err)
	}
	return rs, nil
}

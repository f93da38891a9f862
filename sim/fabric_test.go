package sim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// birdTriangle is one spine and two leaves, all BIRD: leaf1 reaches leaf2
// only through the spine, so a ping between their loopbacks proves that
// addresses, sessions, origination and kernel routes all work.
func birdTriangle(t *testing.T) *sim.Topology {
	return triangle(t, "triangle", "bird", "bird", "bird")
}

// triangle is spine1 with leaf1 and leaf2 behind it, of the given node
// kinds.
func triangle(t *testing.T, name, spine, leaf1, leaf2 string) *sim.Topology {
	t.Helper()
	topo, err := sim.ParseTopology([]byte(fmt.Sprintf(`
name: %s
nodes:
  - {name: spine1, role: spine, asn: 65000, kind: %s}
  - {name: leaf1, role: leaf, asn: 65001, kind: %s}
  - {name: leaf2, role: leaf, asn: 65002, kind: %s}
links:
  - [leaf1, spine1]
  - [leaf2, spine1]
`, name, spine, leaf1, leaf2)))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestFabricBirdPrivileged(t *testing.T) {
	f := simtest.Start(t, birdTriangle(t))
	simtest.WaitConverged(t, f)
	ctx := context.Background()
	checkTriangle(t, f)

	// The fabric is described for other processes.
	g, err := sim.Load(f.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	if g.PID("spine1") != f.PID("spine1") || g.Namespace("leaf2") == nil {
		t.Errorf("loaded fabric: spine1 pid %d (want %d), leaf2 namespace %v", g.PID("spine1"), f.PID("spine1"), g.Namespace("leaf2"))
	}
	g.Close()

	// A restarted daemon gets a new PID and the fabric converges again.
	old := f.PID("spine1")
	if err := f.Restart(ctx, "spine1"); err != nil {
		t.Fatal(err)
	}
	if f.PID("spine1") == old || syscall.Kill(old, 0) == nil {
		t.Errorf("restart of spine1: pid %d -> %d", old, f.PID("spine1"))
	}
	simtest.WaitConverged(t, f)
	if err := f.Ping(ctx, "leaf2", "leaf1", 6); err != nil {
		t.Error(err)
	}

	// Down leaves nothing; simtest checks the same again in its cleanup.
	pids := f.PIDs()
	if err := f.Down(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range simtest.Leftovers(f, pids) {
		t.Error(err)
	}
}

// checkTriangle checks a converged triangle: leaf1 pings leaf2 through
// the spine over both families, every node's status shows its sessions
// up, and leaf1's daemon installed spine1's and leaf2's loopbacks.
func checkTriangle(t *testing.T, f *sim.Fabric) {
	t.Helper()
	ctx := context.Background()
	for _, fam := range []int{4, 6} {
		if err := f.Ping(ctx, "leaf1", "leaf2", fam); err != nil {
			t.Errorf("IPv%d: %v", fam, err)
		}
	}
	st, err := f.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Converged() || s.SessionsUp != 2*len(f.Node(s.Name).Interfaces) {
			t.Errorf("%s: %+v", s.Name, s)
		}
	}
	rs, err := f.Routes("leaf1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Errorf("leaf1 has %d routes of protocol %d, want 4: %v", len(rs), f.Node("leaf1").RouteProtocol(), rs)
	}
}

// TestCleanupCrashedRunPrivileged leaves a fabric behind as a crashed
// `switchd sim up` would, and has Cleanup find and remove it.
func TestCleanupCrashedRunPrivileged(t *testing.T) {
	ns.Privileged(t)
	root, err := os.MkdirTemp("", "swdsim-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	prefix := ns.RunPrefix() + "c"
	f, err := sim.Up(context.Background(), birdTriangle(t), sim.Options{Prefix: prefix, RunDir: filepath.Join(root, prefix)})
	if err != nil {
		t.Fatal(err)
	}
	pids := f.PIDs()
	t.Cleanup(func() { f.Down(context.Background()) }) // only if Cleanup fails
	if len(pids) != 3 {
		t.Fatalf("pids %v, want 3", pids)
	}
	// A second Up of the same prefix is refused and changes nothing.
	if _, err := sim.Up(context.Background(), birdTriangle(t), sim.Options{Prefix: prefix, RunDir: filepath.Join(root, prefix)}); err == nil || !strings.Contains(err.Error(), "sim down") {
		t.Errorf("second Up: %v", err)
	}
	// Something else running in a node's namespace is ours too.
	sleep, err := f.Command(context.Background(), "leaf1", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	go sleep.Wait()
	// A stale run dir without fabric.json, as a crash early in Up leaves.
	stale := filepath.Join(root, ns.RunPrefix()+"x")
	os.MkdirAll(stale, 0o755)
	f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gone, err := sim.Cleanup(ctx, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 {
		t.Errorf("cleanup removed %v, want %s and the stale dir", gone, prefix)
	}
	for _, err := range simtest.Leftovers(f, append(pids, sleep.Process.Pid)) {
		t.Error(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("stale run dir %s is still there", stale)
	}
}

func TestUpRefusesMissingSwitchd(t *testing.T) {
	ns.Privileged(t)
	topo := birdTriangle(t)
	topo.Nodes[0].Kind = sim.Switchd
	dir := t.TempDir()
	_, err := sim.Up(context.Background(), topo, sim.Options{Prefix: ns.RunPrefix() + "m", RunDir: filepath.Join(dir, "run")})
	if err == nil || !strings.Contains(err.Error(), "no switchd binary") {
		t.Fatalf("Up without a switchd binary: %v", err)
	}
	if left, _ := ns.List(ns.RunPrefix() + "m-"); len(left) > 0 {
		t.Errorf("namespaces made: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); err == nil {
		t.Errorf("run dir made")
	}
}

// TestWaitConvergedDaemonExitPrivileged runs a switchd node whose binary
// does not exist: WaitConverged reports the dead daemon instead of waiting.
func TestWaitConvergedDaemonExitPrivileged(t *testing.T) {
	ns.Privileged(t)
	topo := birdTriangle(t)
	topo.Nodes[2].Kind = sim.Switchd
	dir := t.TempDir()
	prefix := ns.RunPrefix() + "h"
	f, err := sim.New(topo, sim.Options{Prefix: prefix, RunDir: filepath.Join(dir, "run"), SwitchdBinary: "/nonexistent/switchd"})
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec fails only after the namespaces and BIRD nodes exist,
	// so the start succeeds and the daemon exits: WaitConverged notices.
	if err := f.Up(context.Background()); err != nil {
		t.Fatalf("up: %v", err)
	}
	pids := f.PIDs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = sim.WaitConverged(ctx, f)
	if err == nil || !strings.Contains(err.Error(), "leaf2: switchd exited") {
		t.Errorf("WaitConverged: %v", err)
	}
	if err := f.Down(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range simtest.Leftovers(f, pids) {
		t.Error(err)
	}
}

// TestUpCanceledTearsDownPrivileged cancels Up after the namespaces and
// links exist and checks that it removed them.
func TestUpCanceledTearsDownPrivileged(t *testing.T) {
	ns.Privileged(t)
	dir := t.TempDir()
	prefix := ns.RunPrefix() + "k"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := sim.New(birdTriangle(t), sim.Options{Prefix: prefix, RunDir: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	err = f.Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Up with a canceled context: %v", err)
	}
	for _, err := range simtest.Leftovers(f, f.PIDs()) {
		t.Error(err)
	}
}

// Package simtest brings simulated fabrics up for Go tests and proves, when
// the test ends, that they left nothing behind.
//
// A test package using it runs inside a private network namespace:
//
//	func TestMain(m *testing.M) { ns.TestMain(m) }
//
//	func TestSomethingPrivileged(t *testing.T) {
//		f := simtest.Start(t, sim.Default())
//		simtest.WaitConverged(t, f)
//		if err := f.Ping(ctx, "host1", "host4", 6); err != nil { ... }
//	}
package simtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
)

// SwitchdPackage is what Start builds for switchd nodes.
const SwitchdPackage = "github.com/switchd/switchd/switchd"

// ConvergeTimeout bounds WaitConverged.
var ConvergeTimeout = 2 * time.Minute

var (
	buildMu   sync.Mutex // guards builds
	builds    = map[string]string{}
	fabricSeq atomic.Int32
)

// SwitchdBinary builds the switchd binary once per test binary and returns
// its path. $SWITCHD_SIMTEST_BINARY names a binary to use instead: a
// regression test is run against the build of an older commit that way.
func SwitchdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SWITCHD_SIMTEST_BINARY"); p != "" {
		return p
	}
	return Build(t, SwitchdPackage)
}

// Build builds the main package pkg once per test binary into a directory
// of this run and returns the binary's path. Builds of earlier runs whose
// process is gone are removed.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builds[pkg]; ok {
		return p
	}
	if len(builds) == 0 {
		sweepBuilds()
	}
	dir := filepath.Join(os.TempDir(), "switchd-simtest-"+ns.RunPrefix())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The owner's PID lets a later run tell whether this is stale.
	os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	out := filepath.Join(dir, filepath.Base(pkg))
	if o, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, o)
	}
	builds[pkg] = out
	return out
}

func sweepBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "switchd-simtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// Option adjusts the sim.Options Start uses.
type Option func(*sim.Options)

// WithSwitchd runs the given switchd binary instead of building one.
func WithSwitchd(path string) Option { return func(o *sim.Options) { o.SwitchdBinary = path } }

// Start brings topo up with a prefix derived from ns.RunPrefix() and a run
// dir of its own. In t.Cleanup it tears the fabric down and then fails the
// test if any of its namespaces, veths or processes remain. It does not
// wait for BGP; see WaitConverged.
func Start(t testing.TB, topo *sim.Topology, opts ...Option) *sim.Fabric {
	t.Helper()
	ns.Privileged(t)
	// Short: unix socket paths under it must stay below 108 bytes.
	runDir, err := os.MkdirTemp("", "swdsim-")
	if err != nil {
		t.Fatal(err)
	}
	// FRR's daemons drop root and must reach their node's dir.
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := sim.Options{
		Prefix: fmt.Sprintf("%sf%d", ns.RunPrefix(), fabricSeq.Add(1)),
		RunDir: filepath.Join(runDir, "run"),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	for _, opt := range opts {
		opt(&o)
	}
	for _, n := range topo.Nodes {
		if (n.Kind == sim.Switchd || n.Kind == "") && o.SwitchdBinary == "" {
			o.SwitchdBinary = SwitchdBinary(t)
			break
		}
	}
	f, err := sim.New(topo, o)
	if err != nil {
		os.RemoveAll(runDir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer os.RemoveAll(runDir)
		if t.Failed() {
			dumpLogs(t, f)
		}
		pids := f.PIDs()
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Minute, time.Duration(len(topo.Nodes))*time.Second))
		defer cancel()
		if err := f.Down(ctx); err != nil {
			t.Errorf("fabric down: %v", err)
		}
		for _, err := range Leftovers(f, pids) {
			t.Error(err)
		}
	})
	// A big fabric's paced start slows as it grows, each node joining a
	// fabric busier with the ones before it: 500 hosts at a load average
	// of 200-450 started their last hundred nodes at 1.8 s a node.
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Minute, time.Duration(len(topo.Nodes))*3*time.Second))
	defer cancel()
	if err := f.Up(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// Leftovers lists what of fabric f is still there: namespaces with its
// prefix, veths named like its interfaces in the test's namespace, and
// live processes among pids.
func Leftovers(f *sim.Fabric, pids []int) []error {
	var errs []error
	if left, err := ns.List(f.Prefix + "-"); err != nil {
		errs = append(errs, err)
	} else if len(left) > 0 {
		errs = append(errs, fmt.Errorf("fabric %s left namespaces %v", f.Prefix, left))
	}
	ifnames := map[string]bool{}
	for _, n := range f.Nodes() {
		for _, i := range n.Interfaces {
			ifnames[i.Name] = true
		}
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if l.Type() == "veth" && ifnames[l.Attrs().Name] {
				errs = append(errs, fmt.Errorf("fabric %s left veth %s in the test's namespace", f.Prefix, l.Attrs().Name))
			}
		}
	} else {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("fabric %s left process %d running", f.Prefix, pid))
		}
	}
	if _, err := os.Stat(f.RunDir); err == nil {
		errs = append(errs, fmt.Errorf("fabric %s left its run dir %s", f.Prefix, f.RunDir))
	}
	return errs
}

// WaitConverged waits for f to converge (ConvergeTimeout at most) and
// fails the test, with each node's daemon log, if it does not.
func WaitConverged(t testing.TB, f *sim.Fabric) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ConvergeTimeout)
	defer cancel()
	if err := sim.WaitConverged(ctx, f); err != nil {
		t.Fatal(err)
	}
}

// dumpLogs writes the tail of each node's daemon log to the test log and,
// when SWITCHD_SIMTEST_LOGS names a directory, the whole logs there: the
// run dir goes with the fabric, and a failure's cause is often early.
func dumpLogs(t testing.TB, f *sim.Fabric) {
	keep := os.Getenv("SWITCHD_SIMTEST_LOGS")
	for _, n := range f.Nodes() {
		b, err := os.ReadFile(n.Log)
		if err != nil {
			continue
		}
		if keep != "" {
			dst := filepath.Join(keep, f.Prefix+"-"+n.Name+".log")
			if err := os.MkdirAll(keep, 0o755); err == nil {
				err = os.WriteFile(dst, b, 0o644)
			}
			if err != nil {
				t.Logf("keep log of %s: %v", n.Name, err)
			}
		}
		s := string(b)
		if len(s) > 8000 {
			s = "...\n" + s[len(s)-8000:]
		}
		t.Logf("log of %s (%s):\n%s", n.Name, n.Log, s)
	}
}

// testWriter sends the fabric's log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// idleHostPrivate bounds the private (anonymous) resident memory of an
// idle host node (2 sessions, ~25 routes): issue 8's 20 MiB, which is what
// lets one machine simulate hundreds of nodes. VmRSS also counts ~22 MiB
// of the binary's file-backed image (text, rodata, pclntab), pages every
// node shares in the page cache: it is logged, not bounded here (see
// docs/PERFORMANCE.md, "Idle memory").
const idleHostPrivate = 20 << 20

// TestIdleMemoryPrivileged brings the default fabric up, lets it go idle
// and checks every host node's private resident memory. Then host1
// reloads its config (SIGHUP): the schema released after start-up is
// unzipped again, the reload is applied, and the node settles back within
// the bound. The bound is a level each node must reach, not a deadline:
// a node is polled until it is there or a generous time is up.
func TestIdleMemoryPrivileged(t *testing.T) {
	ns.Privileged(t)
	f := simtest.Start(t, sim.Default())
	simtest.WaitConverged(t, f)

	var hosts []string
	for _, n := range f.Nodes() {
		if n.Role == sim.Host && n.Kind == sim.Switchd {
			hosts = append(hosts, n.Name)
		}
	}
	waitIdle(t, f, hosts)
	for _, n := range f.Nodes() {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", f.PID(n.Name))); err == nil {
			t.Logf("%-7s %-5s %s", n.Name, n.Role, statusFields(st, "VmRSS", "RssAnon", "RssFile"))
		}
	}

	pid := f.PID("host1")
	before := reloads(t, f, "host1")
	if err := f.Reload(context.Background(), "host1"); err != nil {
		t.Fatalf("reload host1: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); reloads(t, f, "host1") == before; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) || !f.Running("host1") || f.PID("host1") != pid {
			t.Fatalf("host1 did not log a config reload after SIGHUP")
		}
	}
	simtest.WaitConverged(t, f)
	waitIdle(t, f, []string{"host1"})
}

// reloads counts the reloads a node's daemon logged.
func reloads(t *testing.T, f *sim.Fabric, node string) int {
	t.Helper()
	b, err := os.ReadFile(f.LogPath(node))
	if err != nil {
		t.Fatalf("read %s log: %v", node, err)
	}
	return bytes.Count(b, []byte(`msg="config reloaded"`))
}

// waitIdle polls each node's RssAnon until it is within idleHostPrivate,
// for up to a minute (start-up garbage is returned to the OS right after
// start-up; the minute covers a slow, shared machine).
func waitIdle(t *testing.T, f *sim.Fabric, nodes []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, node := range nodes {
		for {
			anon, err := rssAnon(f.PID(node))
			if err != nil {
				t.Fatalf("%s: %v", node, err)
			}
			if anon <= idleHostPrivate {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s idle: RssAnon %.1f MiB, want <= %d MiB", node, float64(anon)/(1<<20), idleHostPrivate>>20)
				break
			}
			time.Sleep(time.Second)
		}
	}
}

// rssAnon reads a process's anonymous resident memory from
// /proc/PID/status.
func rssAnon(pid int) (int64, error) {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RssAnon of pid %d: %w", pid, err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read RssAnon of pid %d: %q: %w", pid, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read RssAnon of pid %d: no RssAnon line", pid)
}

// statusFields picks the named fields out of a /proc/PID/status text, for
// the log.
func statusFields(st []byte, names ...string) string {
	var out []string
	for _, l := range strings.Split(string(st), "\n") {
		for _, n := range names {
			if v, ok := strings.CutPrefix(l, n+":"); ok {
				out = append(out, n+" "+strings.Join(strings.Fields(v), " "))
			}
		}
	}
	return strings.Join(out, ", ")
}

package ns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Privileged skips t unless the test runs as root, the only way to make
// namespaces. Tests that call it say "Privileged" in their names.
func Privileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// NewT creates namespace RunPrefix()+"-"+name for a test and removes it, and
// kills anything still running in it, in t.Cleanup, whatever the outcome.
func NewT(t testing.TB, name string) *NS {
	t.Helper()
	Privileged(t)
	n, err := New(RunPrefix() + "-" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range n.Pids() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if err := n.Delete(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// TestNetnsEnv names, in a test binary run by TestMain, the namespace
// the tests run in.
const TestNetnsEnv = "SWITCHD_TEST_NETNS"

// TestMain runs the package's tests inside a private network namespace, so
// that code which opens sockets in "its" namespace (an embedded BGP speaker,
// say) never sees the machine's. Use it as
//
//	func TestMain(m *testing.M) { ns.TestMain(m) }
//
// The parent process creates the namespace, re-executes the test binary in
// it, removes it afterwards and then fails if the run left any namespace
// with its prefix behind.
func TestMain(m *testing.M) {
	if os.Getenv(TestNetnsEnv) != "" || os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	prefix := RunPrefix()
	n, err := New(prefix + "-main")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ns.TestMain:", err)
		os.Exit(1)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ns.TestMain:", err)
		os.Exit(1)
	}
	// nsenter switches only the network namespace. `ip netns exec` would
	// also give the tests a mount namespace of their own, and namespaces
	// they then create would be invisible to daemons they started before.
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--", exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), TestNetnsEnv+"="+n.Name, "SWITCHD_RUN_PREFIX="+prefix)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	code := 0
	if err := cmd.Run(); err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	for _, pid := range n.Pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	n.Delete()
	if left, _ := List(prefix); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: tests left network namespaces behind: %s\n", strings.Join(left, " "))
		for _, name := range left {
			for _, pid := range PidsIn(name) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			if o, err := Open(name); err == nil {
				o.Delete()
			}
		}
		code = 1
	}
	os.Exit(code)
}

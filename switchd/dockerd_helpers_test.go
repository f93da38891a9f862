package main

import (
	"archive/tar"
	"context"
	"errors"
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
)

// A real dockerd for tests (Debian's docker.io and busybox-static, see
// .ci/packages), isolated from the machine's Docker: its own data root,
// exec root and API socket under the test's directory; no iptables
// rules and no docker0 bridge; its own mount namespace, in which a tmpfs
// covers /run and /run/docker/plugins is the test's plugin directory, so
// it finds the switchd driver the test chose and nothing it mounts
// outlives it (the namespace goes with its last process).

// testDockerd is a dockerd a test started in a network namespace.
type testDockerd struct {
	t    testing.TB
	host string // DOCKER_HOST
	cmd  *exec.Cmd
	logs *lockedBuffer
	// pids are the containers' init processes, killed at cleanup in case
	// dockerd could not remove them.
	pids []int
}

// dockerTools skips the test unless dockerd and a static busybox are
// installed.
func dockerTools(t testing.TB) (busybox string) {
	t.Helper()
	for _, tool := range []string{"dockerd", "docker", "unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: apt-get install docker.io busybox-static (listed in .ci/packages)", tool)
		}
	}
	busybox = "/bin/busybox"
	if out, err := exec.Command("file", "-L", busybox).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Skipf("%s is not static: apt-get install busybox-static", busybox)
	} else if _, err := os.Stat(busybox); err != nil {
		t.Skip("busybox not found: apt-get install busybox-static")
	}
	return busybox
}

// startDockerd starts dockerd in n with plugins (a directory holding
// switchd.sock) as its /run/docker/plugins, and stops it, its
// containers and its containerd at cleanup, whatever the outcome.
func startDockerd(t testing.TB, n *ns.NS, plugins string) *testDockerd {
	t.Helper()
	dir := t.TempDir()
	d := &testDockerd{t: t, host: "unix://" + filepath.Join(dir, "docker.sock"), logs: &lockedBuffer{}}
	script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/docker/plugins
mount --bind %q /run/docker/plugins
exec dockerd --data-root %q --exec-root %q --pidfile %q -H %q --iptables=false --ip6tables=false --bridge=none --storage-driver vfs`,
		plugins, filepath.Join(dir, "data"), filepath.Join(dir, "exec"), filepath.Join(dir, "docker.pid"), d.host)
	// nsenter switches the network namespace only: `ip netns exec` would
	// remount /sys without the cgroup tree dockerd needs.
	d.cmd = exec.Command("nsenter", "--net="+n.Path(), "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := d.run(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			d.run(ctx, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		d.cmd.Process.Signal(syscall.SIGTERM) // the exec'd dockerd: it stops its containerd
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-exited
		}
		for _, pid := range d.pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", tail(d.logs.String(), 40))
		}
	})
	waitFor(t, 60*time.Second, "dockerd answers", func() error {
		select {
		case <-exited:
			t.Fatalf("dockerd exited:\n%s", d.logs.String())
		default:
		}
		_, err := d.run(context.Background(), "version")
		return err
	})
	return d
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// run runs the docker client against this dockerd.
func (d *testDockerd) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// must runs docker and fails the test on error.
func (d *testDockerd) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(d.t.Context(), args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// runContainer starts a detached container that sleeps, remembering its
// init process for cleanup; it returns the init's PID.
func (d *testDockerd) runContainer(name string, args ...string) int {
	d.t.Helper()
	d.must(append(append([]string{"run", "-d", "--name", name}, args...), testImage, "sleep", "100000")...)
	pid, err := strconv.Atoi(d.must("inspect", "-f", "{{.State.Pid}}", name))
	if err != nil || pid == 0 {
		d.t.Fatalf("pid of %s: %v", name, err)
	}
	d.pids = append(d.pids, pid)
	return pid
}

const testImage = "switchd-test/busybox:local"

// importBusybox makes testImage without a registry: a root filesystem
// of the static busybox and its applets, docker import'ed.
func (d *testDockerd) importBusybox(busybox string) {
	d.t.Helper()
	tarball := filepath.Join(d.t.TempDir(), "rootfs.tar")
	if err := busyboxRootfs(tarball, busybox, "sh", "sleep", "ping", "ip", "cat"); err != nil {
		d.t.Fatal(err)
	}
	d.must("import", tarball, testImage)
}

func busyboxRootfs(path, busybox string, applets ...string) (err error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	w := tar.NewWriter(f)
	hdrs := []*tar.Header{{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}}
	for _, h := range hdrs {
		if err := w.WriteHeader(h); err != nil {
			return err
		}
	}
	if _, err := w.Write(bin); err != nil {
		return err
	}
	for _, a := range applets {
		if err := w.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	return w.Close()
}

// addrs returns the IPv4 and IPv6 (if any) address of a container on one
// network.
func (d *testDockerd) addrs(name string) (v4, v6 netip.Addr) {
	d.t.Helper()
	f := strings.Fields(d.must("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}", name))
	if len(f) == 0 || len(f) > 2 {
		d.t.Fatalf("addresses of %s: %q", name, f)
	}
	if len(f) == 2 {
		v6 = netip.MustParseAddr(f[1])
	}
	return netip.MustParseAddr(f[0]), v6
}

// pingFrom sends one ping from the network namespace of process pid (a
// container's init).
func pingFrom(ctx context.Context, pid int, dst netip.Addr) error {
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(pid), "-n", "ping", "-c", "1", "-W", "1", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %v: %v: %s", dst, err, out)
	}
	return nil
}

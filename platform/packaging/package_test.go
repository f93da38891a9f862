package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const exampleConfig = "../../examples/leaf.json"

// build makes both artifacts from a stand-in binary (a shell script: the
// packaging does not care what the executable is, and linking the real one
// would cost the test its speed). It returns the options and the stub's
// content.
func build(t *testing.T) (Options, []byte) {
	t.Helper()
	dir := t.TempDir()
	stub := []byte("#!/bin/sh\necho switchd-stub \"$@\"\n")
	bin := filepath.Join(dir, "switchd")
	if err := os.WriteFile(bin, stub, 0o755); err != nil {
		t.Fatal(err)
	}
	return Options{Binary: bin, Config: exampleConfig, Version: "1.2.3~test", Arch: "amd64", OutDir: filepath.Join(dir, "dist")}, stub
}

// checkTree checks every file switchd installs under root: content, mode,
// the CNI symlink and the enable symlink.
func checkTree(t *testing.T, root string, stub []byte) {
	t.Helper()
	cfg, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	unitText, err := os.ReadFile("switchd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
		data []byte
	}{
		{"/usr/sbin/switchd", 0o755, stub},
		{"/usr/lib/systemd/system/switchd.service", 0o644, unitText},
		{"/etc/switchd/switchd.json.example", 0o644, cfg},
		{"/etc/iproute2/rt_protos.d/switchd.conf", 0o644, []byte("77\tswitchd\n")},
		{"/etc/iproute2/rt_addrprotos.d/switchd.conf", 0o644, []byte("77\tswitchd\n")},
	} {
		p := filepath.Join(root, f.path)
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if st.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode(), f.mode)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, f.data) {
			t.Errorf("%s: content differs from its source (%d bytes, want %d)", f.path, len(got), len(f.data))
		}
	}
	for link, want := range map[string]string{
		"/opt/cni/bin/switchd": "/usr/sbin/switchd",
		"/etc/systemd/system/multi-user.target.wants/switchd.service": "/usr/lib/systemd/system/switchd.service",
	} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want -> %s", link, got, err, want)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func needDpkg(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install dpkg): the .deb cannot be built or checked", tool)
		}
	}
}

// TestDeb builds the .deb, checks its control fields, conffiles and file
// list, installs it with dpkg into a temporary root (scripts included:
// postinst enables the unit there), checks every installed file, then
// purges it and checks nothing of it is left.
func TestDeb(t *testing.T) {
	needDpkg(t)
	o, stub := build(t)
	deb, err := Deb(o)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "switchd_1.2.3~test_amd64.deb" {
		t.Errorf("package file %s", deb)
	}
	for field, want := range map[string]string{"Package": "switchd", "Version": "1.2.3~test", "Architecture": "amd64", "Section": "net"} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("control %s: %q, want %q", field, got, want)
		}
	}
	if got := run(t, "dpkg-deb", "-I", deb, "conffiles"); got != "/etc/switchd/switchd.json.example\n/etc/iproute2/rt_protos.d/switchd.conf\n/etc/iproute2/rt_addrprotos.d/switchd.conf\n" {
		t.Errorf("conffiles:\n%s", got)
	}
	list := run(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/sbin/switchd\n",
		"-rw-r--r-- root/root .* ./usr/lib/systemd/system/switchd.service\n",
		"-rw-r--r-- root/root .* ./etc/switchd/switchd.json.example\n",
		"-rw-r--r-- root/root .* ./etc/iproute2/rt_protos.d/switchd.conf\n",
		"-rw-r--r-- root/root .* ./etc/iproute2/rt_addrprotos.d/switchd.conf\n",
		"lrwxrwxrwx root/root .* ./opt/cni/bin/switchd -> /usr/sbin/switchd\n",
		"drwxr-xr-x root/root .* ./\n",
	} {
		if !matchLine(list, want) {
			t.Errorf("dpkg-deb -c has no line like %q:\n%s", want, list)
		}
	}

	root, dpkg := installDeb(t, deb)
	checkTree(t, root, stub)
	run(t, "dpkg", append(dpkg, "-P", "switchd")...)
	for _, p := range []string{"/usr/sbin/switchd", "/opt/cni/bin/switchd", "/etc/switchd/switchd.json.example",
		"/etc/systemd/system/multi-user.target.wants/switchd.service"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s left behind after dpkg -P", p)
		}
	}
}

// installDeb installs the package with dpkg into a new temporary root
// (maintainer scripts included) and returns the root and the dpkg flags
// that address it.
func installDeb(t *testing.T, deb string) (string, []string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := []string{"--root=" + root, "--force-not-root", "--force-script-chrootless"}
	run(t, "dpkg", append(dpkg, "-i", deb)...)
	if st := run(t, "dpkg", append(dpkg, "-s", "switchd")...); !strings.Contains(st, "Status: install ok installed") {
		t.Errorf("dpkg -s switchd:\n%s", st)
	}
	return root, dpkg
}

// matchLine reports whether a line of text matches the pattern, where
// ".*" stands for the size and date columns.
func matchLine(text, pattern string) bool {
	head, tail, _ := strings.Cut(pattern, ".*")
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, head) && strings.HasSuffix(l, tail) {
			return true
		}
	}
	return false
}

// TestUnitVerify runs systemd-analyze verify on the unit, with its
// switchd path pointed at an executable (verify checks ExecStart
// binaries exist); any message, even a "ignoring" warning, fails.
func TestUnitVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed: unit syntax not verified")
	}
	o, _ := build(t)
	dir := t.TempDir()
	text := strings.ReplaceAll(string(unit), BinaryPath, o.Binary)
	p := filepath.Join(dir, "switchd.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// onieEnv is the environment without any onie_* variable of the caller,
// plus the given ones.
func onieEnv(vars ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "onie_") && !strings.HasPrefix(e, "target_root=") {
			env = append(env, e)
		}
	}
	return append(env, vars...)
}

// TestONIEInstaller runs the installer image as ONIE would, with the
// onie_* variables set and a temporary target root: a supported platform
// gets every file, the enable symlink and a machine.conf; an unknown
// platform, no platform and a corrupted image are refused with a clear
// message, a non-zero exit and nothing installed.
func TestONIEInstaller(t *testing.T) {
	o, stub := build(t)
	img, err := ONIE(o)
	if err != nil {
		t.Fatal(err)
	}
	install := func(t *testing.T, img string, vars ...string) (string, string, error) {
		root := t.TempDir()
		cmd := exec.Command("sh", img, root)
		cmd.Env = onieEnv(vars...)
		out, err := cmd.CombinedOutput()
		return root, string(out), err
	}
	refused := func(t *testing.T, root, out string, err error, want string) {
		t.Helper()
		if err == nil {
			t.Errorf("installer exited 0:\n%s", out)
		}
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
		if ents, _ := os.ReadDir(root); len(ents) > 0 {
			t.Errorf("refused install wrote %d entries into the target root", len(ents))
		}
	}

	t.Run("supported", func(t *testing.T) {
		root, out, err := install(t, img, "onie_platform=x86_64-mlnx_msn2700-r0", "onie_machine=mlnx_msn2700", "onie_switch_asic=mlnx")
		if err != nil {
			t.Fatalf("installer: %v\n%s", err, out)
		}
		checkTree(t, root, stub)
		mc, err := os.ReadFile(filepath.Join(root, "etc/machine.conf"))
		if err != nil || !strings.Contains(string(mc), "onie_platform=x86_64-mlnx_msn2700-r0\n") || !strings.Contains(string(mc), "onie_switch_asic=mlnx\n") {
			t.Errorf("etc/machine.conf (%v):\n%s", err, mc)
		}
	})
	t.Run("unknown platform", func(t *testing.T) {
		root, out, err := install(t, img, "onie_platform=x86_64-acme_box9000-r0")
		refused(t, root, out, err, "platform x86_64-acme_box9000-r0 is not supported")
	})
	t.Run("other architecture", func(t *testing.T) {
		root, out, err := install(t, img, "onie_platform=arm64-mlnx_msn2700-r0")
		refused(t, root, out, err, "platform arm64-mlnx_msn2700-r0 is not supported")
	})
	t.Run("no platform", func(t *testing.T) {
		root, out, err := install(t, img)
		refused(t, root, out, err, "onie_platform is not set")
	})
	t.Run("corrupt image", func(t *testing.T) {
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)-100] ^= 0xff
		bad := filepath.Join(t.TempDir(), "bad.bin")
		if err := os.WriteFile(bad, data, 0o755); err != nil {
			t.Fatal(err)
		}
		root, out, err := install(t, bad, "onie_platform=kvm_x86_64-r0")
		refused(t, root, out, err, "image corrupt")
	})
}

// TestPlatforms: the build keeps only its architecture's platforms.
func TestPlatforms(t *testing.T) {
	for _, p := range Platforms("amd64") {
		if !strings.Contains(p, "x86_64") {
			t.Errorf("amd64 list has %s", p)
		}
	}
	if len(Platforms("amd64")) == 0 || len(Platforms("mips")) != 0 {
		t.Errorf("amd64: %v, mips: %v", Platforms("amd64"), Platforms("mips"))
	}
}

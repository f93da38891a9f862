package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMakePackage runs `make package` as a user would (with the binary and
// the output directory moved into temporary ones, so a running build or
// demo is not disturbed) and checks both artifacts it leaves: the .deb
// installs into a temporary root with the real switchd binary, which runs
// there, and the ONIE installer lays out the same tree for a supported
// platform and refuses an unknown one.
func TestMakePackage(t *testing.T) {
	needDpkg(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed: make package not run")
	}
	dir := t.TempDir()
	bin, dist := filepath.Join(dir, "bin", "switchd"), filepath.Join(dir, "dist")
	out := run(t, "make", "-C", "../..", "--no-print-directory", "package", "BIN="+bin, "DIST="+dist, "VERSION=9.9.9~make")
	deb := filepath.Join(dist, "switchd_9.9.9~make_"+debArch[runtime.GOARCH]+".deb")
	img := filepath.Join(dist, "switchd-onie-installer-"+onieArch[runtime.GOARCH]+".bin")
	for _, p := range []string{deb, img} {
		if !strings.Contains(out, p) {
			t.Fatalf("make package did not report %s:\n%s", p, out)
		}
	}
	real, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	root, _ := installDeb(t, deb)
	checkTree(t, root, real)
	if v := run(t, filepath.Join(root, BinaryPath), "version"); !strings.HasPrefix(v, "switchd ") {
		t.Errorf("installed switchd version: %q", v)
	}

	root = t.TempDir()
	cmd := exec.Command("sh", img, root)
	cmd.Env = onieEnv("onie_platform=" + Platforms(runtime.GOARCH)[0])
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ONIE installer on %s: %v\n%s", Platforms(runtime.GOARCH)[0], err, b)
	}
	checkTree(t, root, real)

	root = t.TempDir()
	cmd = exec.Command("sh", img, root)
	cmd.Env = onieEnv("onie_platform=x86_64-acme_box9000-r0")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "is not supported") {
		t.Errorf("ONIE installer on an unknown platform: %v\n%s", err, b)
	}
}

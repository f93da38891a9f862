// Package packaging builds switchd's release artifacts: a Debian package
// (dpkg-deb) and an ONIE NOS installer image (a shell archive). Both lay
// out the same files, listed once in layout.
package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

var (
	//go:embed switchd.service
	unit []byte
	//go:embed onie-header.sh
	onieHeader string
	//go:embed onie-install.sh
	onieInstall []byte
	//go:embed onie-platforms
	oniePlatforms string
)

// Paths on the installed system.
const (
	BinaryPath   = "/usr/sbin/switchd"
	UnitPath     = "/usr/lib/systemd/system/switchd.service"
	ConfigPath   = "/etc/switchd/switchd.json.example"
	CNIPath      = "/opt/cni/bin/switchd"
	RTProtosPath = "/etc/iproute2/rt_protos.d/switchd.conf"
	// RTProtos names fib's route protocol number for ip route.
	RTProtos = "77\tswitchd\n"
	// RTAddrProtosPath names the address protocol (IFA_PROTO) of the
	// addresses switchd configures, for ip address (iproute2 >= 6.3).
	RTAddrProtosPath = "/etc/iproute2/rt_addrprotos.d/switchd.conf"
)

// Options says what to package and where to put it.
type Options struct {
	Binary  string // the switchd executable
	Config  string // example config, installed as ConfigPath
	Version string // Debian version: starts with a digit
	Arch    string // Go GOARCH; "" means runtime.GOARCH
	OutDir  string
}

// file is one entry of the installed tree: a regular file or, with Link
// set, a symlink.
type file struct {
	path     string // absolute on the target
	mode     os.FileMode
	data     []byte
	link     string
	conffile bool
}

func (o Options) layout() ([]file, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(o.Config)
	if err != nil {
		return nil, err
	}
	return []file{
		{path: BinaryPath, mode: 0o755, data: bin},
		{path: UnitPath, mode: 0o644, data: unit},
		{path: ConfigPath, mode: 0o644, data: cfg, conffile: true},
		{path: RTProtosPath, mode: 0o644, data: []byte(RTProtos), conffile: true},
		{path: RTAddrProtosPath, mode: 0o644, data: []byte(RTProtos), conffile: true},
		// A CNI runtime runs the plugin by its type name; switchd acts as
		// the plugin when started with CNI_COMMAND set and no arguments.
		{path: CNIPath, mode: 0o777, link: BinaryPath},
	}, nil
}

// debArch maps GOARCH to Debian's architecture name.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armhf", "386": "i386", "riscv64": "riscv64", "ppc64le": "ppc64el"}

// onieArch maps GOARCH to the architecture prefix of onie_platform.
var onieArch = map[string]string{"amd64": "x86_64", "arm64": "arm64", "arm": "armhf"}

func (o Options) check() (Options, error) {
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Version == "" || o.Version[0] < '0' || o.Version[0] > '9' {
		return o, fmt.Errorf("packaging: version %q must start with a digit", o.Version)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return o, err
	}
	return o, nil
}

const (
	postinst = `#!/bin/sh
# Enables the unit (it starts once /etc/switchd/switchd.json exists). With
# DPKG_ROOT set (dpkg --root) only the target tree is touched.
set -e
if [ "$1" = configure ] && command -v systemctl >/dev/null; then
	systemctl --root="${DPKG_ROOT:-/}" enable switchd.service >/dev/null
	if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	fi
fi
`
	prerm = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
	systemctl stop switchd.service || true
fi
`
	postrm = `#!/bin/sh
set -e
if [ "$1" = purge ] || [ "$1" = remove ]; then
	rm -f "${DPKG_ROOT}/etc/systemd/system/multi-user.target.wants/switchd.service"
fi
`
)

// Deb builds switchd_VERSION_ARCH.deb in OutDir and returns its path.
func Deb(o Options) (string, error) {
	o, err := o.check()
	if err != nil {
		return "", err
	}
	arch, ok := debArch[o.Arch]
	if !ok {
		return "", fmt.Errorf("packaging: no Debian architecture for %s", o.Arch)
	}
	files, err := o.layout()
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "switchd-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	// The stage is the package's "./": MkdirTemp made it 0700.
	if err := os.Chmod(stage, 0o755); err != nil {
		return "", err
	}
	var conffiles strings.Builder
	for _, f := range files {
		if f.conffile {
			conffiles.WriteString(f.path + "\n")
		}
	}
	control := fmt.Sprintf(`Package: switchd
Version: %s
Architecture: %s
Maintainer: switchd developers <switchd@localhost>
Section: net
Priority: optional
Description: L3 fabric routing daemon
 switchd runs BGP, installs routes in the kernel FIB and applies workload
 policy with nftables, on servers and on switchdev white-box switches. It
 is also the CNI plugin (/opt/cni/bin/switchd).
`, o.Version, arch)
	files = append(files,
		file{path: "/DEBIAN/control", mode: 0o644, data: []byte(control)},
		file{path: "/DEBIAN/conffiles", mode: 0o644, data: []byte(conffiles.String())},
		file{path: "/DEBIAN/postinst", mode: 0o755, data: []byte(postinst)},
		file{path: "/DEBIAN/prerm", mode: 0o755, data: []byte(prerm)},
		file{path: "/DEBIAN/postrm", mode: 0o755, data: []byte(postrm)},
	)
	for _, f := range files {
		if err := writeFile(stage, f); err != nil {
			return "", err
		}
	}
	out := filepath.Join(o.OutDir, fmt.Sprintf("switchd_%s_%s.deb", o.Version, arch))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", stage, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb: %v\n%s", err, msg)
	}
	return out, nil
}

// writeFile puts f under root with its exact mode (umask does not apply),
// making parent directories 0755.
func writeFile(root string, f file) error {
	p := filepath.Join(root, f.path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if f.link != "" {
		return os.Symlink(f.link, p)
	}
	if err := os.WriteFile(p, f.data, f.mode); err != nil {
		return err
	}
	return os.Chmod(p, f.mode)
}

// Platforms returns the supported onie_platform names for GOARCH arch.
func Platforms(arch string) []string {
	prefix, ok := onieArch[arch]
	var out []string
	for _, l := range strings.Split(oniePlatforms, "\n") {
		l = strings.TrimSpace(l)
		if ok && l != "" && !strings.HasPrefix(l, "#") && strings.Contains(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// ONIE builds switchd-onie-installer-ARCH.bin in OutDir and returns its
// path: onie-header.sh with the payload's sha1 filled in, the marker line,
// then the gzip'd tar of installer/{install.sh, platforms, root/...}.
func ONIE(o Options) (string, error) {
	o, err := o.check()
	if err != nil {
		return "", err
	}
	platforms := Platforms(o.Arch)
	if len(platforms) == 0 {
		return "", fmt.Errorf("packaging: no supported ONIE platform for %s", o.Arch)
	}
	files, err := o.layout()
	if err != nil {
		return "", err
	}
	var payload bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&payload, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	entries := []file{
		{path: "installer/install.sh", mode: 0o755, data: onieInstall},
		{path: "installer/platforms", mode: 0o644, data: []byte(strings.Join(platforms, "\n") + "\n")},
	}
	for _, f := range files {
		f.path = "installer/root" + f.path
		entries = append(entries, f)
	}
	if err := writeTar(tw, entries); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	sum := sha1.Sum(payload.Bytes())
	header := strings.Replace(onieHeader, "@PAYLOAD_SHA1@", hex.EncodeToString(sum[:]), 1)
	arch := onieArch[o.Arch]
	out := filepath.Join(o.OutDir, fmt.Sprintf("switchd-onie-installer-%s.bin", arch))
	img := append([]byte(header), payload.Bytes()...)
	if err := os.WriteFile(out, img, 0o755); err != nil {
		return "", err
	}
	return out, os.Chmod(out, 0o755)
}

// writeTar writes entries owned by root, with the directories each needs
// (once, 0755) before it.
func writeTar(tw *tar.Writer, entries []file) error {
	made := map[string]bool{}
	mtime := time.Now()
	for _, f := range entries {
		var dirs []string
		for d := filepath.Dir(f.path); d != "." && d != "/" && !made[d]; d = filepath.Dir(d) {
			made[d] = true
			dirs = append([]string{d}, dirs...)
		}
		for _, d := range dirs {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
				return err
			}
		}
		h := &tar.Header{Name: f.path, Mode: int64(f.mode), ModTime: mtime}
		if f.link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return nil
}

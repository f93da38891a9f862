package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/sim/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

var (
	hostLo4 = netip.MustParseAddr("10.255.0.1")
	hostLo6 = netip.MustParseAddr("fd00:ff::1")
	pool4   = host.Pool{Prefix: netip.MustParsePrefix("10.10.0.0/16")}
	pool6   = host.Pool{Prefix: netip.MustParsePrefix("fd00:10::/64")}
)

// goBin finds a tool installed with go install: PATH first, then
// $(go env GOPATH)/bin.
func goBin(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(d, "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Skipf("%s not found in PATH or $(go env GOPATH)/bin; install it with: go install %s", name, install)
	return ""
}

func cnitool(t testing.TB) string {
	return goBin(t, "cnitool", "github.com/containernetworking/cni/cnitool@v1.3.0")
}

const pluginMain = `package main

import (
	"os"

	"github.com/switchd/switchd/host/cni"
)

func main() { os.Exit(cni.Main()) }
`

// buildPlugin builds a binary named "switchd" whose main is Main, into a
// temp dir it returns (the CNI_PATH). The main exists only in a build
// overlay, so nothing is written into the source tree. With
// SWITCHD_CNI_BIN set to a built switchd binary, that binary is used
// instead (it must run Main when CNI_COMMAND is set).
func buildPlugin(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if bin := os.Getenv("SWITCHD_CNI_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err == nil {
			err = os.Symlink(abs, filepath.Join(dir, "switchd"))
		}
		if err != nil {
			t.Fatalf("SWITCHD_CNI_BIN: %v", err)
		}
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(pluginMain), 0o644); err != nil {
		t.Fatal(err)
	}
	ovl, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(wd, "testplugin", "main.go"): src}})
	ovlFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovlFile, ovl, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-overlay", ovlFile, "-o", filepath.Join(bin, "switchd"), "./testplugin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	return bin
}

// routeInstaller stands in for the daemon's fib: it follows the Manager's
// route feed, installs the routes into the host namespace and keeps the
// prefixes to originate. It drains the feed when the test looks
// (advertised) and before every ping, so a test sees what the Manager
// published before the plugin returned.
type routeInstaller struct {
	t   testing.TB
	mu  sync.Mutex
	m   *host.Manager
	nl  *netlink.Handle
	adv []netip.Prefix
}

// installers are the live routeInstallers, for ping to sync.
var installers sync.Map // *routeInstaller → struct{}

func syncInstallers() {
	installers.Range(func(f, _ any) bool {
		f.(*routeInstaller).sync()
		return true
	})
}

func (f *routeInstaller) advertised() []netip.Prefix {
	f.sync()
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.adv)
}

func (f *routeInstaller) sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.m.DrainRoutes()
	if c.OriginateChanged {
		f.adv = c.Originate
	}
	f.applyLocked(c.Set, c.Del)
}

func (f *routeInstaller) applyLocked(set []fib.Route, del []fib.RouteKey) {
	for _, k := range del {
		r := &netlink.Route{Dst: prefixNet(k.Dst), Table: k.Table, Protocol: fib.Protocol}
		if err := f.nl.RouteDel(r); err != nil && err != unix.ESRCH {
			f.t.Errorf("fib: delete %v: %v", k, err)
		}
	}
	for _, r := range set {
		nr := &netlink.Route{Dst: prefixNet(r.Key.Dst), Table: r.Key.Table, Protocol: fib.Protocol}
		if r.Type == fib.Blackhole {
			nr.Type = unix.RTN_BLACKHOLE
		} else {
			nr.LinkIndex = r.NextHops[0].Ifindex
			nr.Scope = netlink.SCOPE_LINK
		}
		if err := f.nl.RouteReplace(nr); err != nil {
			f.t.Errorf("fib: replace %v: %v", r, err)
		}
	}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// daemon is the daemon side of a test: a host namespace with addresses on
// lo, a Manager whose routes are installed there, its API on a socket.
type daemon struct {
	host   *ns.NS
	fib    *routeInstaller
	m      *host.Manager
	state  string
	socket string
	client *endpointapi.Client
}

func newDaemon(t testing.TB, pools ...host.Pool) *daemon {
	t.Helper()
	if len(pools) == 0 {
		pools = []host.Pool{pool4, pool6}
	}
	d := &daemon{host: ns.NewT(t, "host"), state: t.TempDir()}
	for _, a := range []netip.Addr{hostLo4, hostLo6} {
		if err := d.host.AddAddr("lo", netip.PrefixFrom(a, a.BitLen())); err != nil {
			t.Fatal(err)
		}
	}
	m, err := host.NewManager(host.Options{StateDir: d.state, Pools: pools, HostNetns: d.host.Path(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	d.fib = &routeInstaller{t: t, m: m, nl: d.host.Handle()}
	installers.Store(d.fib, struct{}{})
	t.Cleanup(func() { installers.Delete(d.fib) })
	d.m = m
	d.socket = filepath.Join(t.TempDir(), "switchd.sock")
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: host.NewAPIHandler(m, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	d.client = &endpointapi.Client{Socket: d.socket}
	return d
}

// records lists the IDs of the endpoint records in the state directory
// (the live puts of its endpoints.log).
func (d *daemon) records(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.state, "endpoints.log"))
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			Put *struct {
				ID string `json:"id"`
			} `json:"put"`
			Del string `json:"del"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("record line %q: %v", line, err)
		}
		if l.Put != nil {
			live[l.Put.ID] = true
		} else {
			delete(live, l.Del)
		}
	}
	var ids []string
	for id := range live {
		ids = append(ids, id)
	}
	return ids
}

// veths lists the host-side veths the Manager made.
func (d *daemon) veths(t testing.TB) []string {
	t.Helper()
	links, err := d.host.Handle().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "swc") {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// route is what the host's routing table says about exactly dst ("" if
// nothing).
func (d *daemon) route(t testing.TB, dst netip.Addr) string {
	t.Helper()
	fam := "-4"
	if dst.Is6() {
		fam = "-6"
	}
	out, err := d.host.Run(context.Background(), "ip", fam, "route", "show", "exact", netip.PrefixFrom(dst, dst.BitLen()).String())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// netconf writes a network config file for cnitool and returns its dir.
func netconf(t testing.TB, conf map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(filepath.Join(dir, "10-"+conf["name"].(string)+".conf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// netName is a CNI network name unique to this run, so that cnitool's
// result cache (/var/lib/cni/results/<name>-...) never mixes runs; its
// files are removed at the end.
func netName(t testing.TB, name string) string {
	n := ns.RunPrefix() + "-" + name
	t.Cleanup(func() {
		ms, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", n+"-*"))
		for _, m := range ms {
			os.Remove(m)
		}
	})
	return n
}

// runCnitool runs cnitool cmd for network net and netns path.
func runCnitool(ctx context.Context, t testing.TB, tool, confDir, cniPath, cmd, net, netns string, env ...string) (string, error) {
	c := exec.CommandContext(ctx, tool, cmd, net, netns)
	c.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+cniPath)
	c.Env = append(c.Env, env...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("cnitool %s %s %s: %w: %s", cmd, net, netns, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// pluginError is a plugin's error output.
type pluginError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

// execPlugin runs the plugin as a runtime does (CNI_* variables, config on
// stdin) and returns its stdout and the error it printed, if it failed.
func execPlugin(t testing.TB, pluginDir, command, containerID, netns, ifname string, conf []byte) (string, *pluginError) {
	t.Helper()
	c := exec.Command(filepath.Join(pluginDir, "switchd"))
	c.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+netns,
		"CNI_IFNAME="+ifname, "CNI_PATH="+pluginDir)
	c.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err == nil {
		return stdout.String(), nil
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("run plugin: %v", err)
	}
	e := &pluginError{}
	if jerr := json.Unmarshal(stdout.Bytes(), e); jerr != nil {
		t.Fatalf("plugin %s failed (%v) without a CNI error on stdout: %q, stderr %q", command, err, stdout.String(), stderr.String())
	}
	return stdout.String(), e
}

func ping(ctx context.Context, n *ns.NS, args ...string) error {
	syncInstallers()
	_, err := n.Run(ctx, append([]string{"ping", "-n", "-c1", "-W2"}, args...)...)
	return err
}

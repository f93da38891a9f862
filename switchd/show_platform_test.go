package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/daemon/state"
)

const spectrumTree = "../testdata/platform/spectrum"

// recordValue is the value of a field of show's record output ("" if
// the field is not there).
func recordValue(out, field string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestShowPlatformAgainstServer: the fake Spectrum switch rendered by
// the daemon's renderers into a gNMI server: show platform names its
// kind, vendor, model, serial, ASIC, ports (port4 down), sensors and
// fans; --json has them typed; show interfaces gains an Offload column
// for the switchdev port; show route marks the routes a driver flagged
// as iproute2 does.
func TestShowPlatformAgainstServer(t *testing.T) {
	sock, s := startServer(t, gnmi.Options{Schema: oc.LazySchemaTree()["Device"]})
	tr := state.New(s)
	m, warns := platform.Detect(spectrumTree)
	if err := tr.Platform(m, warns); err != nil {
		t.Fatal(err)
	}
	if err := tr.Links([]platform.LinkStats{{Index: 5, Name: "swp1", Type: unix.ARPHRD_ETHER, Flags: unix.IFF_UP, OperState: platform.OperUp, MTU: 9000},
		{Index: 6, Name: "eth0", Type: unix.ARPHRD_ETHER, Flags: unix.IFF_UP, OperState: platform.OperUp, MTU: 1500}}); err != nil {
		t.Fatal(err)
	}
	sw := platform.SwitchdevPort(spectrumTree, "swp1")
	sw.HWTC = &platform.Feature{Active: true}
	if err := tr.PortOffloads(map[string]platform.PortOffload{"swp1": sw, "eth0": {HWTC: &platform.Feature{Fixed: true}}}); err != nil {
		t.Fatal(err)
	}
	show := func(args ...string) string {
		out, _ := switchd(t, 0, append([]string{"show", "--gnmi-socket", sock}, args...)...)
		return out
	}

	out := show("platform")
	for field, want := range map[string]string{
		"Vendor": "Mellanox Technologies Ltd.", "Model": "MSN2700", "Serial": "MT1822X05367",
		"ASIC":    "Spectrum",
		"Ports":   "port1=swp1,port2=swp2,port3=swp3,port4=swp4(down)",
		"Sensors": "coretemp/Core 0=43.0C,coretemp/Package id 0=45.0C,dps460/temp1=30.0C,mlxsw/asic=52.0C",
		"CPUs":    "2",
	} {
		if got := recordValue(out, field); got != want {
			t.Errorf("show platform %s: %q, want %q\n%s", field, got, want, out)
		}
	}
	if !strings.HasPrefix(out, "Platform switch\n") {
		t.Errorf("show platform: not a switch\n%s", out)
	}
	if recordValue(out, "Warnings") != "" {
		t.Errorf("show platform: warnings for a valid tree\n%s", out)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(show("--json", "platform")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("show platform --json: %v, %d rows", err, len(rows))
	}
	if ports, _ := rows[0]["ports"].([]any); len(ports) != 4 || rows[0]["asic"] != "Spectrum" || rows[0]["cpus"] != float64(2) {
		t.Errorf("show platform --json: %v", rows[0])
	}

	out = show("interfaces")
	if f := lineWith(out, "swp1"); len(f) == 0 || f[len(f)-1] != "switchdev(p1),hw-tc" {
		t.Errorf("show interfaces: swp1 line %q\n%s", f, out)
	}
	if f := lineWith(out, "eth0"); len(f) == 0 || f[len(f)-1] != "-" {
		t.Errorf("show interfaces: eth0 line %q (no offload)\n%s", f, out)
	}

	// Two routes a driver flagged, as the AFT source renders them.
	leaf := func(p string, v *gpb.TypedValue) *gpb.Update {
		gp, err := ygot.StringToStructuredPath(aftPath + p)
		if err != nil {
			t.Fatal(err)
		}
		return &gpb.Update{Path: gp, Val: v}
	}
	b := func(x bool) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: x}} }
	e1, e2 := "/ipv4-unicast/ipv4-entry[prefix=10.9.0.0/24]/state/", "/ipv4-unicast/ipv4-entry[prefix=10.8.0.0/24]/state/"
	if err := s.Update(&gpb.Notification{Timestamp: time.Now().UnixNano(), Update: []*gpb.Update{
		leaf(e1+"prefix", &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "10.9.0.0/24"}}),
		leaf(e1+"hardware/offloaded", b(true)), leaf(e1+"hardware/trap", b(true)), leaf(e1+"hardware/offload-failed", b(false)),
		leaf(e2+"prefix", &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "10.8.0.0/24"}}),
		leaf(e2+"hardware/offloaded", b(false)), leaf(e2+"hardware/trap", b(false)), leaf(e2+"hardware/offload-failed", b(true)),
	}}); err != nil {
		t.Fatal(err)
	}
	out = show("route")
	if f := lineWith(out, "10.9.0.0/24"); len(f) == 0 || f[len(f)-1] != "offload,trap" {
		t.Errorf("show route: 10.9.0.0/24 line %q\n%s", f, out)
	}
	if f := lineWith(out, "10.8.0.0/24"); len(f) == 0 || f[len(f)-1] != "offload_failed" {
		t.Errorf("show route: 10.8.0.0/24 line %q\n%s", f, out)
	}
	var rs []route
	if err := json.Unmarshal([]byte(show("--json", "route", "10.9.0.0/24")), &rs); err != nil || len(rs) != 1 ||
		strings.Join(rs[0].Hardware, " ") != "offload trap" {
		t.Errorf("show route --json: %v %+v", err, rs)
	}
}

// TestShowPlatformPrivileged runs the daemon (the binary) in a
// namespace with the fake Spectrum tree as its platform root and a veth
// named like the tree's first port: show platform over the daemon's
// local gNMI socket names the switch; show interfaces marks swp1 as the
// ASIC's port (from the tree) whose hw-tc-offload the kernel reports
// off and fixed (a veth, read over ethtool netlink), and a Get of its
// state/hardware says so.
func TestShowPlatformPrivileged(t *testing.T) {
	n, peer := ns.NewT(t, "showplat"), ns.NewT(t, "showplatp")
	if err := ns.Veth(n, "swp1", peer, "p1"); err != nil {
		t.Fatal(err)
	}
	bin := simtest.SwitchdBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, reloadConfig, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(spectrumTree)
	if err != nil {
		t.Fatal(err)
	}
	gsock := filepath.Join(dir, "gnmi.sock")
	d := startSwitchd(t, n, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"),
		"--gnmi-socket", gsock, "--state-dir", filepath.Join(dir, "state"), "--platform-root", root)
	show := func(args ...string) (string, error) {
		var out, errb strings.Builder
		if code := run(append([]string{"show", "--gnmi-socket", gsock}, args...), &out, &errb); code != 0 {
			return "", fmt.Errorf("exit %d: %s", code, errb.String())
		}
		return out.String(), nil
	}
	var out string
	waitFor(t, 30*time.Second, "show platform names the switch", func() (err error) {
		if err := d.alive(); err != nil {
			t.Fatal(err)
		}
		if out, err = show("platform"); err != nil {
			return err
		}
		if recordValue(out, "Model") != "MSN2700" || recordValue(out, "ASIC") != "Spectrum" {
			return fmt.Errorf("not yet:\n%s", out)
		}
		return nil
	})
	if got := recordValue(out, "Ports"); got != "port1=swp1,port2=swp2,port3=swp3,port4=swp4(down)" {
		t.Errorf("show platform Ports %q\n%s", got, out)
	}
	if !strings.Contains(d.logs.String(), "platform detected") {
		t.Errorf("the log does not say what was detected:\n%s", d.logs.String())
	}
	waitFor(t, 30*time.Second, "show interfaces marks swp1", func() error {
		out, err := show("interfaces")
		if err != nil {
			return err
		}
		if f := lineWith(out, "swp1"); len(f) == 0 || f[len(f)-1] != "switchdev(p1)" {
			return fmt.Errorf("swp1 line %q\n%s", f, out)
		}
		return nil
	})
	c, err := dialDaemon(gsock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dev, err := c.device(context.Background(), "/interfaces/interface[name=swp1]/state/hardware")
	if err != nil {
		t.Fatal(err)
	}
	h := dev.GetInterface("swp1").GetHardware()
	if !h.GetSwitchdev() || h.GetSwitchId() != "7cfe90f26640" || h.HwTcOffload == nil || h.GetHwTcOffload() || !h.GetHwTcOffloadFixed() {
		t.Errorf("swp1 state/hardware: %+v, want switchdev of 7cfe90f26640, hw-tc-offload off and fixed", h)
	}
}

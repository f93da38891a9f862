package state

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
)

const platformTrees = "../../../testdata/platform"

// getDevice reads paths from the server's cache with a Get (PROTO: a
// typed value per leaf) and sets each leaf in one device through the
// generated schema, which checks its path and type.
func getDevice(t *testing.T, srv *gnmi.Server, paths ...string) *oc.Device {
	t.Helper()
	dev := &oc.Device{}
	for _, p := range paths {
		gp := &gpb.Path{}
		for _, e := range strings.Split(strings.Trim(p, "/"), "/") {
			gp.Elem = append(gp.Elem, &gpb.PathElem{Name: e})
		}
		resp, err := srv.Get(context.Background(), &gpb.GetRequest{Path: []*gpb.Path{gp}, Encoding: gpb.Encoding_PROTO})
		if err != nil {
			t.Fatalf("get %s: %v", p, err)
		}
		for _, n := range resp.GetNotification() {
			setLeaves(t, dev, n)
		}
	}
	return dev
}

// TestPlatformTreesThroughCache renders each fake machine tree through
// the Tree into a gNMI server's cache (with the schema, as the daemon
// runs it) and reads /components and /switchd/state/platform back with a
// Get: the chassis' vendor, model, serial, kind, memory; the ASIC; each
// front-panel port with its netdev and oper status; the sensors'
// temperatures; detection's warnings; checked field by field.
func TestPlatformTreesThroughCache(t *testing.T) {
	type port struct{ name, netdev, oper string }
	for _, tc := range []struct {
		tree, kind, vendor, model, serial, asic string
		ports                                   []port
		temps                                   map[string]float64
		warn                                    string
		n                                       int // components
	}{
		{tree: "spectrum", kind: "SWITCH", vendor: "Mellanox Technologies Ltd.", model: "MSN2700", serial: "MT1822X05367", asic: "Spectrum",
			ports: []port{{"port1", "swp1", "ACTIVE"}, {"port2", "swp2", "ACTIVE"}, {"port3", "swp3", "ACTIVE"}, {"port4", "swp4", "INACTIVE"}},
			temps: map[string]float64{"mlxsw/asic": 52, "coretemp/Package id 0": 45, "dps460/temp1": 30}, n: 15},
		{tree: "prestera", kind: "SWITCH", vendor: "Marvell", model: "marvell_ac5x", asic: "Prestera",
			ports: []port{{"port1", "sw1p1", "ACTIVE"}, {"port6", "sw1p6", "ACTIVE"}},
			temps: map[string]float64{"prestera/temp1": 61.5}, n: 13},
		{tree: "server", kind: "SERVER", vendor: "Dell Inc.", model: "PowerEdge R640", serial: "8XYZ123",
			temps: map[string]float64{"coretemp/Package id 0": 38}, warn: "no ONIE machine.conf", n: 6},
		{tree: "vm", kind: "VIRTUAL", vendor: "QEMU", model: "Standard PC (Q35 + ICH9, 2009)", warn: "no ONIE machine.conf", n: 3},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			srv, err := gnmi.New(gnmi.Options{Schema: oc.LazySchemaTree()["Device"]})
			if err != nil {
				t.Fatal(err)
			}
			m, warns := platform.Detect(filepath.Join(platformTrees, tc.tree))
			if err := New(srv).Platform(m, warns); err != nil {
				t.Fatal(err)
			}
			dev := getDevice(t, srv, "/components", "/switchd/state/platform")
			if len(dev.Component) != tc.n {
				t.Errorf("%d components, want %d", len(dev.Component), tc.n)
			}
			ch := dev.GetComponent(platform.ChassisName)
			if ch.GetType() != oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_CHASSIS || ch.GetMfgName() != tc.vendor ||
				ch.GetPartNo() != tc.model || ch.GetSerialNo() != tc.serial || ch.GetDescription() != strings.ToLower(tc.kind) {
				t.Errorf("chassis: type %v mfg %q part %q serial %q description %q", ch.GetType(), ch.GetMfgName(), ch.GetPartNo(), ch.GetSerialNo(), ch.GetDescription())
			}
			if mem := ch.GetMemory(); mem.GetAvailable() != m.MemAvail || mem.GetUtilized() != m.MemTotal-m.MemAvail || m.MemAvail == 0 {
				t.Errorf("chassis memory: available %d utilized %d, detected %d of %d", mem.GetAvailable(), mem.GetUtilized(), m.MemAvail, m.MemTotal)
			}
			asic := dev.GetComponent("asic0")
			if tc.asic == "" && asic != nil || tc.asic != "" && asic.GetDescription() != tc.asic {
				t.Errorf("asic0: %v, want %q", asic, tc.asic)
			}
			for _, p := range tc.ports {
				c := dev.GetComponent(p.name)
				oper := c.GetOperStatus().String()
				if c.GetType() != oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_PORT || c.GetDescription() != p.netdev ||
					!strings.HasSuffix(oper, p.oper) || c.GetParent() != platform.ChassisName {
					t.Errorf("%s: type %v description %q oper %s parent %q, want port %s %s", p.name, c.GetType(), c.GetDescription(), oper, c.GetParent(), p.netdev, p.oper)
				}
			}
			for name, want := range tc.temps {
				c := dev.GetComponent(name)
				if c.GetType() != oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_SENSOR || c.GetTemperature().GetInstant() != want {
					t.Errorf("sensor %s: type %v temperature %v, want %v", name, c.GetType(), c.GetTemperature().GetInstant(), want)
				}
			}
			ps := dev.GetSwitchd().GetPlatform()
			if ps.GetKind().String() != tc.kind || ps.GetAsic() != tc.asic {
				t.Errorf("/switchd/state/platform: kind %v asic %q, want %s %q", ps.GetKind(), ps.GetAsic(), tc.kind, tc.asic)
			}
			if w := ps.GetWarning(); tc.warn == "" && len(w) != 0 || tc.warn != "" && (len(w) != 1 || !strings.Contains(w[0], tc.warn)) {
				t.Errorf("warnings %q, want one with %q", w, tc.warn)
			}
		})
	}
}

// TestPlatformRefresh: a refreshed machine publishes only what changed
// (a temperature, a port's oper status), and a sensor that went away is
// deleted by its path.
func TestPlatformRefresh(t *testing.T) {
	root := filepath.Join(t.TempDir(), "spectrum")
	if out, err := exec.Command("cp", "-a", filepath.Join(platformTrees, "spectrum"), root).CombinedOutput(); err != nil {
		t.Fatalf("copy tree: %v %s", err, out)
	}
	pub := &fakePublisher{}
	tr := New(pub)
	m, warns := platform.Detect(root)
	if err := tr.Platform(m, warns); err != nil {
		t.Fatal(err)
	}
	pub.take()
	if err := tr.Platform(m, warns); err != nil {
		t.Fatal(err)
	}
	if up, del := pub.take(); len(up)+len(del) != 0 {
		t.Errorf("an unchanged machine published %v, deleted %v", up, del)
	}
	if err := os.WriteFile(filepath.Join(root, "sys/class/hwmon/hwmon1/temp1_input"), []byte("61500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sys/class/net/swp4/operstate"), []byte("up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "sys/class/hwmon/hwmon2")); err != nil { // the PSU and its sensor
		t.Fatal(err)
	}
	m.Refresh(root)
	if err := tr.Platform(m, warns); err != nil {
		t.Fatal(err)
	}
	up, del := pub.take()
	want := map[string]string{
		"components/component[name=mlxsw/asic]/state/temperature/instant": "61.5",
		"components/component[name=port4]/state/oper-status":              "ACTIVE",
	}
	for k, v := range want {
		if got, ok := up[k]; !ok || !strings.HasSuffix(got, v) {
			t.Errorf("%s published %q, want %s", k, got, v)
		}
	}
	if len(up) != len(want) {
		t.Errorf("published %v, want only %v", up, want)
	}
	slices.Sort(del)
	if !slices.Equal(del, []string{"components/component[name=dps460/temp1]", "components/component[name=dps460]"}) {
		t.Errorf("deleted %v, want the PSU and its sensor", del)
	}
}

// TestPortOffloads: an interface's hardware offload is published under
// its state/hardware (the schema takes it), only for interfaces the
// tree has, not again while unchanged; an interface Links deleted and
// that came back gets its hardware leaves again.
func TestPortOffloads(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub)
	links := []platform.LinkStats{{Index: 2, Name: "swp1"}, {Index: 3, Name: "veth0"}}
	if err := tr.Links(links); err != nil {
		t.Fatal(err)
	}
	pub.take()
	on, off := &platform.Feature{Active: true}, &platform.Feature{Fixed: true}
	ps := map[string]platform.PortOffload{
		"swp1":  {Switchdev: true, SwitchID: "7cfe90f26640", PortName: "p1", HWTC: on},
		"veth0": {HWTC: off},
		"gone":  {Switchdev: true},
	}
	if err := tr.PortOffloads(ps); err != nil {
		t.Fatal(err)
	}
	dev := &oc.Device{}
	for _, n := range pub.ns {
		setLeaves(t, dev, n)
	}
	up, _ := pub.take()
	h := dev.GetInterface("swp1").GetHardware()
	if !h.GetSwitchdev() || h.GetSwitchId() != "7cfe90f26640" || h.GetPortName() != "p1" || !h.GetHwTcOffload() || h.GetHwTcOffloadFixed() {
		t.Errorf("swp1 hardware %+v", h)
	}
	h = dev.GetInterface("veth0").GetHardware()
	if h.GetSwitchdev() || h.SwitchId != nil || h.GetHwTcOffload() || !h.GetHwTcOffloadFixed() || h.Switchdev == nil {
		t.Errorf("veth0 hardware %+v", h)
	}
	if dev.GetInterface("gone") != nil {
		t.Errorf("an interface the tree does not have got hardware leaves: %v", up)
	}
	if err := tr.PortOffloads(ps); err != nil {
		t.Fatal(err)
	}
	if up, del := pub.take(); len(up)+len(del) != 0 {
		t.Errorf("unchanged offloads published %v %v", up, del)
	}
	// veth0 goes and comes back.
	if err := tr.Links(links[:1]); err != nil {
		t.Fatal(err)
	}
	if err := tr.PortOffloads(ps); err != nil {
		t.Fatal(err)
	}
	if err := tr.Links(links); err != nil {
		t.Fatal(err)
	}
	pub.take()
	if err := tr.PortOffloads(ps); err != nil {
		t.Fatal(err)
	}
	up, _ = pub.take()
	if up["interfaces/interface[name=veth0]/state/hardware/hw-tc-offload-fixed"] != "true" || len(up) != 3 {
		t.Errorf("veth0 back: published %v, want its 3 hardware leaves", up)
	}
}

// BenchmarkPlatformSample is one state sample's platform part on the
// fake Spectrum switch: the readings refreshed and the components
// rendered (nothing changed, so nothing published).
//
//	go test -run '^$' -bench PlatformSample ./switchd/daemon/state/
func BenchmarkPlatformSample(b *testing.B) {
	root := filepath.Join(platformTrees, "spectrum")
	tr := New(&fakePublisher{})
	m, warns := platform.Detect(root)
	if err := tr.Platform(m, warns); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Refresh(root)
		if err := tr.Platform(m, warns); err != nil {
			b.Fatal(err)
		}
	}
}

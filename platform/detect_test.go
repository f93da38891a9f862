package platform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
)

const treeDir = "../testdata/platform"

// comp is the expected state of one component, compared field by field
// after a JSON_IETF round trip.
type comp struct {
	typ                     oc.E_PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT
	mfg, part, serial, desc string
	oper                    oc.E_PlatformTypes_COMPONENT_OPER_STATUS
	temp                    float64 // 0: no temperature container
	memAvail, memUsed       uint64
}

func TestDetectTrees(t *testing.T) {
	active, inactive := oc.PlatformTypes_COMPONENT_OPER_STATUS_ACTIVE, oc.PlatformTypes_COMPONENT_OPER_STATUS_INACTIVE
	const (
		chassis = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_CHASSIS
		cpu     = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_CPU
		port    = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_PORT
		sensor  = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_SENSOR
		fan     = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_FAN
		psu     = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_POWER_SUPPLY
		ic      = oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_INTEGRATED_CIRCUIT
	)
	tests := []struct {
		tree                        string
		kind                        Kind
		vendor, model, serial, asic string
		ports                       []string // netdev=frontpanel@driver
		warn                        string   // substring of the only warning; "" for none
		comps                       map[string]comp
		nComps                      int
	}{{
		tree: "spectrum", kind: KindSwitch, vendor: "Mellanox Technologies Ltd.", model: "MSN2700", serial: "MT1822X05367", asic: "Spectrum",
		ports: []string{"swp1=port1@mlxsw_spectrum", "swp2=port2@mlxsw_spectrum", "swp3=port3@mlxsw_spectrum", "swp4=port4@mlxsw_spectrum"},
		comps: map[string]comp{
			"chassis":               {typ: chassis, mfg: "Mellanox Technologies Ltd.", part: "MSN2700", serial: "MT1822X05367", desc: "switch", oper: active, memAvail: 6900000 * 1024, memUsed: (8052440 - 6900000) * 1024},
			"cpu1":                  {typ: cpu, desc: "Intel(R) Celeron(R) CPU  1047UE @ 1.40GHz", oper: active},
			"asic0":                 {typ: ic, mfg: "NVIDIA", desc: "Spectrum", oper: active},
			"port1":                 {typ: port, desc: "swp1", oper: active},
			"port4":                 {typ: port, desc: "swp4", oper: inactive},
			"coretemp/Package id 0": {typ: sensor, oper: active, temp: 45},
			"mlxsw/asic":            {typ: sensor, oper: active, temp: 52},
			"mlxsw/fan2":            {typ: fan, desc: "6150 rpm", oper: active},
			"dps460":                {typ: psu, desc: "123.0 W", oper: active},
			"dps460/temp1":          {typ: sensor, oper: active, temp: 30},
		},
		nComps: 1 + 2 + 1 + 4 + 4 + 2 + 1,
	}, {
		tree: "prestera", kind: KindSwitch, vendor: "Marvell", model: "marvell_ac5x", asic: "Prestera",
		ports: []string{"sw1p1=port1@prestera", "sw1p2=port2@prestera", "sw1p3=port3@prestera", "sw1p4=port4@prestera", "sw1p5=port5@prestera", "sw1p6=port6@prestera"},
		comps: map[string]comp{
			"chassis":        {typ: chassis, mfg: "Marvell", part: "marvell_ac5x", desc: "switch", oper: active, memAvail: 1500000 * 1024, memUsed: (2009556 - 1500000) * 1024},
			"cpu3":           {typ: cpu, oper: active},
			"asic0":          {typ: ic, mfg: "Marvell", desc: "Prestera", oper: active},
			"port6":          {typ: port, desc: "sw1p6", oper: active},
			"prestera/temp1": {typ: sensor, oper: active, temp: 61.5},
		},
		nComps: 1 + 4 + 1 + 6 + 1,
	}, {
		tree: "server", kind: KindServer, vendor: "Dell Inc.", model: "PowerEdge R640", serial: "8XYZ123", warn: "no ONIE machine.conf",
		comps: map[string]comp{
			"chassis":               {typ: chassis, mfg: "Dell Inc.", part: "PowerEdge R640", serial: "8XYZ123", desc: "server", oper: active, memAvail: 180000000 * 1024, memUsed: (196608000 - 180000000) * 1024},
			"cpu0":                  {typ: cpu, desc: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", oper: active},
			"coretemp/Package id 0": {typ: sensor, oper: active, temp: 38},
		},
		nComps: 1 + 4 + 1,
	}, {
		tree: "vm", kind: KindVirtual, vendor: "QEMU", model: "Standard PC (Q35 + ICH9, 2009)", warn: "no ONIE machine.conf",
		comps: map[string]comp{
			"chassis": {typ: chassis, mfg: "QEMU", part: "Standard PC (Q35 + ICH9, 2009)", desc: "virtual", oper: active, memAvail: 3000000 * 1024, memUsed: (4028000 - 3000000) * 1024},
			"cpu1":    {typ: cpu, desc: "QEMU Virtual CPU version 2.5+", oper: active},
		},
		nComps: 1 + 2,
	}}
	for _, tc := range tests {
		t.Run(tc.tree, func(t *testing.T) {
			m, warns := Detect(filepath.Join(treeDir, tc.tree))
			if m.Kind != tc.kind || m.Vendor != tc.vendor || m.Model != tc.model || m.Serial != tc.serial || m.ASIC != tc.asic {
				t.Errorf("got kind %v vendor %q model %q serial %q asic %q, want %v %q %q %q %q", m.Kind, m.Vendor, m.Model, m.Serial, m.ASIC, tc.kind, tc.vendor, tc.model, tc.serial, tc.asic)
			}
			var ports []string
			for _, p := range m.Ports {
				ports = append(ports, p.Netdev+"="+p.FrontPanel+"@"+p.Driver)
			}
			if !reflect.DeepEqual(ports, tc.ports) {
				t.Errorf("ports %q, want %q", ports, tc.ports)
			}
			checkWarn(t, warns, tc.warn)
			got := roundTrip(t, m.Components())
			if len(got.Component) != tc.nComps {
				var names []string
				for n := range got.Component {
					names = append(names, n)
				}
				t.Errorf("%d components %q, want %d", len(names), names, tc.nComps)
			}
			for name, want := range tc.comps {
				checkComp(t, name, got.Component[name], want)
			}
		})
	}
}

func checkWarn(t *testing.T, warns []Warning, want string) {
	t.Helper()
	if want == "" {
		if len(warns) != 0 {
			t.Errorf("warnings %v, want none", warns)
		}
		return
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), want) {
		t.Errorf("warnings %v, want one containing %q", warns, want)
	}
}

// roundTrip validates the tree, emits it as JSON_IETF and reads it back,
// so the test checks what a gNMI client would get.
func roundTrip(t *testing.T, d *oc.Device) *oc.Device {
	t.Helper()
	if err := d.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	js, err := ygot.EmitJSON(d, &ygot.EmitJSONConfig{Format: ygot.RFC7951, RFC7951Config: &ygot.RFC7951JSONConfig{AppendModuleName: true}})
	if err != nil {
		t.Fatalf("emit: %v", err)
	}
	if !json.Valid([]byte(js)) || !strings.Contains(js, `"openconfig-platform:components"`) {
		t.Fatalf("JSON_IETF lacks openconfig-platform:components: %.200s", js)
	}
	back := &oc.Device{}
	if err := oc.Unmarshal([]byte(js), back); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return back
}

func checkComp(t *testing.T, name string, c *oc.Component, w comp) {
	t.Helper()
	if c == nil {
		t.Errorf("component %q missing", name)
		return
	}
	str := func(field string, got *string, want string) {
		g := ""
		if got != nil {
			g = *got
		}
		if g != want {
			t.Errorf("%s %s = %q, want %q", name, field, g, want)
		}
	}
	str("mfg-name", c.MfgName, w.mfg)
	str("part-no", c.PartNo, w.part)
	str("serial-no", c.SerialNo, w.serial)
	str("description", c.Description, w.desc)
	if c.Type != w.typ {
		t.Errorf("%s type = %v, want %v", name, c.Type, w.typ)
	}
	if c.OperStatus != w.oper {
		t.Errorf("%s oper-status = %v, want %v", name, c.OperStatus, w.oper)
	}
	wantParent := ChassisName
	if name == ChassisName {
		wantParent = ""
	}
	str("parent", c.Parent, wantParent)
	if got := c.GetTemperature().GetInstant(); got != w.temp || (w.temp == 0) != (c.Temperature == nil) {
		t.Errorf("%s temperature/instant = %v (container %v), want %v", name, got, c.Temperature != nil, w.temp)
	}
	if got := c.GetMemory(); got.GetAvailable() != w.memAvail || got.GetUtilized() != w.memUsed {
		t.Errorf("%s memory = %d available %d utilized, want %d %d", name, got.GetAvailable(), got.GetUtilized(), w.memAvail, w.memUsed)
	}
}

// TestDetectBadMachineConf: a switch tree whose machine.conf is missing,
// malformed or names no ASIC is not called a switch, and says why.
func TestDetectBadMachineConf(t *testing.T) {
	for _, tc := range []struct{ name, conf, warn string }{
		{"missing", "", "no ONIE machine.conf"},
		{"garbage", "\x00\xff not a conf\n", "malformed ONIE machine.conf"},
		{"unbalanced", "onie_machine=\"mlnx\n", "malformed ONIE machine.conf"},
		{"no machine", "onie_arch=x86_64\n", "malformed ONIE machine.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, filepath.Join(treeDir, "spectrum"), root)
			if err := os.Remove(filepath.Join(root, "host/machine.conf")); err != nil {
				t.Fatal(err)
			}
			if tc.conf != "" {
				if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "etc/machine.conf"), []byte(tc.conf), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, warns := Detect(root)
			if m.Kind != KindServer || m.ASIC != "" || m.ONIE != nil {
				t.Errorf("kind %v asic %q onie %v, want server, no ASIC, no ONIE", m.Kind, m.ASIC, m.ONIE)
			}
			if len(m.Ports) != 4 {
				t.Errorf("%d ports, want the 4 switchdev ports still listed", len(m.Ports))
			}
			if len(warns) != 2 || !strings.Contains(warns[0].String(), tc.warn) || !strings.Contains(warns[1].String(), "switchdev ports but no valid ONIE") {
				t.Errorf("warnings %v, want %q then the switchdev one", warns, tc.warn)
			}
			roundTrip(t, m.Components())
		})
	}
}

// copyTree copies a fake tree, keeping symlinks as symlinks.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		case fi.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDriverFile: a tree copied without symlinks names the driver in a
// plain device/driver file.
func TestDriverFile(t *testing.T) {
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "device"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "device/driver"), []byte("prestera\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := driverOf(d); got != "prestera" {
		t.Errorf("driver %q, want prestera", got)
	}
}

func TestNatLess(t *testing.T) {
	in := []string{"hwmon10", "hwmon2", "temp10_input", "temp9_input", "temp1_input", "hwmon1", "x"}
	sort.Slice(in, func(i, j int) bool { return natLess(in[i], in[j]) })
	want := []string{"hwmon1", "hwmon2", "hwmon10", "temp1_input", "temp9_input", "temp10_input", "x"}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("natLess order %q, want %q", in, want)
	}
}

// TestDetectHost reads this machine's real /proc and /sys: whatever it is,
// detection finds CPUs and memory and renders a valid tree.
func TestDetectHost(t *testing.T) {
	m, warns := Detect("")
	t.Logf("kind %v vendor %q model %q, %d CPUs, %d ports, %d sensors, warnings %v", m.Kind, m.Vendor, m.Model, len(m.CPUs), len(m.Ports), len(m.Sensors), warns)
	if len(m.CPUs) == 0 || m.MemTotal == 0 || m.MemAvail > m.MemTotal {
		t.Errorf("%d CPUs, memory %d of %d available", len(m.CPUs), m.MemAvail, m.MemTotal)
	}
	roundTrip(t, m.Components())
}

func TestFrontPanel(t *testing.T) {
	for pn, want := range map[string]string{"p1": "port1", "p12s3": "port12/3", "x": "eth9", "p": "eth9", "p1s": "eth9", "p-1": "eth9"} {
		if got := frontPanel(pn, "eth9"); got != want {
			t.Errorf("frontPanel(%q) = %q, want %q", pn, got, want)
		}
	}
}

// FuzzParseMachineConf: any input either fails cleanly or yields only
// shell-identifier keys and an onie_platform or onie_machine.
func FuzzParseMachineConf(f *testing.F) {
	b, err := os.ReadFile(filepath.Join(treeDir, "spectrum/host/machine.conf"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("onie_machine='x'\n# c\n\nexport onie_arch=arm64"))
	f.Add([]byte("=\n\"\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		conf, err := ParseMachineConf(in)
		if err != nil {
			if conf != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if conf["onie_platform"] == "" && conf["onie_machine"] == "" {
			t.Fatalf("accepted without onie_platform/onie_machine: %q", in)
		}
		for k := range conf {
			if !validKey(k) {
				t.Fatalf("key %q accepted", k)
			}
		}
	})
}

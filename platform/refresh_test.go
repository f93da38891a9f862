package platform

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRefreshReadings: on a copy of the Spectrum tree, a temperature, a
// port's oper state and the free memory change after Detect; Refresh
// reads the new values and keeps the identity Detect found, even with
// DMI changed under it.
func TestRefreshReadings(t *testing.T) {
	root := filepath.Join(t.TempDir(), "spectrum")
	if out, err := exec.Command("cp", "-a", filepath.Join(treeDir, "spectrum"), root).CombinedOutput(); err != nil {
		t.Fatalf("copy tree: %v %s", err, out)
	}
	m, _ := Detect(root)
	write := func(p, v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, p), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/class/hwmon/hwmon1/temp1_input", "61500")
	write("sys/class/net/swp4/operstate", "up")
	write("sys/class/net/swp1/operstate", "down")
	write("proc/meminfo", "MemTotal: 8052440 kB\nMemFree: 1000 kB\nMemAvailable: 2000000 kB\n")
	write("sys/class/dmi/id/product_serial", "CHANGED")
	m.Refresh(root)
	temp := map[string]float64{}
	for _, s := range m.Sensors {
		temp[s.Name] = s.Celsius
	}
	if temp["mlxsw/asic"] != 61.5 {
		t.Errorf("ASIC temperature %v after refresh, want 61.5 (sensors %v)", temp["mlxsw/asic"], m.Sensors)
	}
	up := map[string]bool{}
	for _, p := range m.Ports {
		up[p.Netdev] = p.Up
	}
	if !up["swp4"] || up["swp1"] || !up["swp2"] {
		t.Errorf("ports' oper state after refresh: %v", up)
	}
	if m.MemAvail != 2000000*1024 || m.MemTotal != 8052440*1024 {
		t.Errorf("memory after refresh: total %d available %d", m.MemTotal, m.MemAvail)
	}
	if m.Serial != "MT1822X05367" || m.Kind != KindSwitch || len(m.Ports) != 4 {
		t.Errorf("identity changed by refresh: %s %v %d ports", m.Serial, m.Kind, len(m.Ports))
	}
}

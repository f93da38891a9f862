package platform

import (
	"os"
	"path/filepath"
)

// Refresh reads again, under the same root Detect read, what changes
// while the machine runs: memory, the hwmon readings (temperatures, fan
// speeds, power) and the ports' oper state. Identity, CPUs and the port
// list stay as Detect found them: they change only with a restart (a
// port added by a driver reload is seen by the next switchd).
func (m *Machine) Refresh(root string) {
	if root == "" {
		root = "/"
	}
	b, _ := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	m.MemTotal, _, m.MemAvail = ParseMeminfo(b)
	var fresh Machine
	readHwmon(root, &fresh)
	m.Sensors, m.Fans, m.PowerSupply = fresh.Sensors, fresh.Fans, fresh.PowerSupply
	for i := range m.Ports {
		m.Ports[i].Up = readTrim(filepath.Join(root, "sys/class/net", m.Ports[i].Netdev, "operstate")) == "up"
	}
}

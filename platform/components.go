package platform

import (
	"fmt"

	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
)

// ChassisName is the name of the root component; every other component
// names it as parent.
const ChassisName = "chassis"

// Components renders the machine as the openconfig-platform /components
// tree (state only). The generated models carry no CPU utilisation, fan
// speed or PSU output leaves (openconfig-platform-cpu, -fan and -psu are
// not in models/gen.sh's module list), so fans and PSUs appear with their
// type, parent and oper-status only, and the reading in description.
func (m Machine) Components() *oc.Device {
	d := &oc.Device{}
	add := func(name string, t oc.E_PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT) *oc.Component {
		c := d.GetOrCreateComponent(name)
		c.Type = t
		c.OperStatus = oc.PlatformTypes_COMPONENT_OPER_STATUS_ACTIVE
		if name != ChassisName {
			c.Parent = ygot.String(ChassisName)
		}
		return c
	}

	ch := add(ChassisName, oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_CHASSIS)
	ch.Description = ygot.String(m.Kind.String())
	ch.MfgName = optString(m.Vendor)
	ch.PartNo = optString(m.Model)
	ch.ModelName = optString(m.Model)
	ch.SerialNo = optString(m.Serial)
	if v := m.ONIE["onie_machine_rev"]; v != "" {
		ch.HardwareVersion = ygot.String(v)
	}
	if v := m.ONIE["onie_version"]; v != "" {
		ch.FirmwareVersion = ygot.String(v)
	}
	if m.MemTotal > 0 {
		ch.Memory = &oc.Component_Memory{Available: ygot.Uint64(m.MemAvail), Utilized: ygot.Uint64(m.MemTotal - min(m.MemAvail, m.MemTotal))}
	}

	for i, model := range m.CPUs {
		c := add(fmt.Sprintf("cpu%d", i), oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_CPU)
		c.Description = optString(model)
	}
	if m.ASIC != "" {
		c := add("asic0", oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_INTEGRATED_CIRCUIT)
		c.MfgName = ygot.String(m.ASICVendor)
		c.Description = ygot.String(m.ASIC)
	}
	for _, p := range m.Ports {
		c := add(p.FrontPanel, oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_PORT)
		c.Description = ygot.String(p.Netdev)
		if !p.Up {
			c.OperStatus = oc.PlatformTypes_COMPONENT_OPER_STATUS_INACTIVE
		}
	}
	for _, s := range m.Sensors {
		c := add(s.Name, oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_SENSOR)
		c.Temperature = &oc.Component_Temperature{Instant: ygot.Float64(s.Celsius)}
	}
	for _, f := range m.Fans {
		c := add(f.Name, oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_FAN)
		c.Description = ygot.String(fmt.Sprintf("%d rpm", f.RPM))
	}
	for _, p := range m.PowerSupply {
		c := add(p.Name, oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_POWER_SUPPLY)
		c.Description = ygot.String(fmt.Sprintf("%.1f W", p.Watts))
	}
	return d
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return ygot.String(s)
}

package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/switchd/switchd/models/oc"
)

func showPlatform(ctx context.Context, c *daemonClient, o showOutput) error {
	d, err := c.device(ctx, "/components", "/switchd/state/platform")
	if err != nil {
		return err
	}
	t := renderPlatform(d)
	if o.json {
		return t.writeJSON(o.w)
	}
	return t.writeRecords(o.w)
}

// renderPlatform is one record: what kind of machine this is (switch,
// server, virtual), the chassis' vendor, model, serial and versions,
// the switch ASIC, the front-panel ports (name=netdev and whether up),
// the sensors' temperatures, fans, power supplies, CPUs, memory, and
// detection's warnings.
func renderPlatform(d *oc.Device) *table {
	t := newTable("Platform", "Vendor", "Model", "Serial", "Hardware version", "Firmware version",
		"ASIC", "Ports", "Sensors", "Fans", "Power supplies", "CPUs", "Memory available", "Memory used", "Warnings")
	byType := map[oc.E_PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT][]*oc.Component{}
	for _, name := range slices.SortedFunc(maps.Keys(d.Component), naturalCompare) {
		c := d.Component[name]
		if typ, ok := c.Type.(oc.E_PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT); ok {
			byType[typ] = append(byType[typ], c)
		}
	}
	list := func(typ oc.E_PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT, f func(c *oc.Component) string) []string {
		var out []string
		for _, c := range byType[typ] {
			out = append(out, f(c))
		}
		return out
	}
	ports := list(oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_PORT, func(c *oc.Component) string {
		s := c.GetName() + "=" + c.GetDescription()
		if c.GetOperStatus() != oc.PlatformTypes_COMPONENT_OPER_STATUS_ACTIVE {
			s += "(down)"
		}
		return s
	})
	sensors := list(oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_SENSOR, func(c *oc.Component) string {
		return fmt.Sprintf("%s=%.1fC", c.GetName(), c.GetTemperature().GetInstant())
	})
	withReading := func(c *oc.Component) string { return c.GetName() + "=" + c.GetDescription() }
	fans := list(oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_FAN, withReading)
	psus := list(oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_POWER_SUPPLY, withReading)
	var cpus any
	if n := len(byType[oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_CPU]); n > 0 {
		cpus = n
	}
	ch := d.GetComponent("chassis")
	var mem [2]any
	if m := ch.GetMemory(); m != nil {
		mem = [2]any{bytesOf(m.Available), bytesOf(m.Utilized)}
	}
	p := d.GetSwitchd().GetPlatform()
	kind := enumText(p.GetKind())
	if kind == nil && ch != nil { // an older daemon: the chassis says it
		kind = ch.GetDescription()
	}
	var asic any
	if a := p.GetAsic(); a != "" {
		asic = a
	} else if ics := byType[oc.PlatformTypes_OPENCONFIG_HARDWARE_COMPONENT_INTEGRATED_CIRCUIT]; len(ics) > 0 {
		asic = ics[0].Description
	}
	t.add(kind, ch.GetMfgName(), ch.GetPartNo(), ch.GetSerialNo(), ch.GetHardwareVersion(), ch.GetFirmwareVersion(),
		asic, orNil(ports), orNil(sensors), orNil(fans), orNil(psus), cpus, mem[0], mem[1], orNil(p.GetWarning()))
	return t
}

// interfaceOffloads is what each interface offloads to hardware, as
// show interfaces' Offload column says it: "switchdev" for a port of a
// switch ASIC (with its phys_port_name), "hw-tc" where the kernel's
// hw-tc-offload feature is on. Nil when no interface offloads anything
// (a server, a VM): the column is left out.
func interfaceOffloads(ifs []*oc.Interface) map[string][]string {
	var out map[string][]string
	for _, i := range ifs {
		h := i.GetHardware()
		var s []string
		if h.GetSwitchdev() {
			sw := "switchdev"
			if pn := h.GetPortName(); pn != "" {
				sw += "(" + pn + ")"
			}
			s = append(s, sw)
		}
		if h.GetHwTcOffload() {
			s = append(s, "hw-tc")
		}
		if s == nil {
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[i.GetName()] = s
	}
	return out
}

// orNil is a list, or nil (a field left out) if it is empty.
func orNil(l []string) any {
	if len(l) == 0 {
		return nil
	}
	return l
}

// naturalCompare orders port2 before port10 and port1/2 before port1/10:
// runs of digits compare as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			x, _ := strconv.Atoi(a[:da])
			y, _ := strconv.Atoi(b[:db])
			if x != y {
				return x - y
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digits(s string) int {
	return len(s) - len(strings.TrimLeft(s, "0123456789"))
}

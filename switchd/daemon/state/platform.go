package state

import (
	"maps"
	"slices"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
)

// The machine (platform.Detect's Machine, its readings refreshed every
// sample) under /components, one subtree per component, so a sensor or
// port that goes away is deleted by its path; what detection concluded
// (kind, ASIC, warnings) under /switchd/state/platform; and each
// interface's hardware offload under
// /interfaces/interface/state/hardware (switchd.yang's augment), a
// subtree of its own beside the one Links renders.

// platformSeen is what the Tree keeps of the platform between
// renderings.
type platformSeen struct {
	components map[string]bool                 // names published under /components
	ports      map[string]platform.PortOffload // interfaces' hardware last published
}

// Platform publishes the machine's components and what detection said
// of it. Unchanged leaves (a serial number, a steady temperature) are
// not sent again: the funnel compares each component with its last
// rendering.
func (t *Tree) Platform(m platform.Machine, warns []platform.Warning) error {
	var errs joinErrs
	d := m.Components()
	now := make(map[string]bool, len(d.Component))
	for _, name := range slices.Sorted(maps.Keys(d.Component)) {
		now[name] = true
		errs.add(t.publish(componentPath(name), d.Component[name]))
	}
	for name := range t.plat.components {
		if !now[name] {
			errs.add(t.publish(componentPath(name), nil))
		}
	}
	t.plat.components = now
	errs.add(t.publish(statusElems("platform"), PlatformStatus(m, warns)))
	return errs.err()
}

func componentPath(name string) []*gpb.PathElem {
	return []*gpb.PathElem{elem("components"), elem("component", "name", name)}
}

// PlatformStatus renders /switchd/state/platform: the kind of machine,
// its ASIC and detection's warnings.
func PlatformStatus(m platform.Machine, warns []platform.Warning) *oc.Switchd_Platform {
	p := &oc.Switchd_Platform{Kind: oc.State_Kind_SERVER}
	switch m.Kind {
	case platform.KindSwitch:
		p.Kind = oc.State_Kind_SWITCH
	case platform.KindVirtual:
		p.Kind = oc.State_Kind_VIRTUAL
	}
	if m.ASIC != "" {
		p.Asic = ygot.String(m.ASIC)
	}
	for _, w := range warns {
		p.Warning = append(p.Warning, w.String())
	}
	return p
}

// samePort reports whether two readings of a port's offload render the
// same.
func samePort(a, b platform.PortOffload) bool {
	if a.Switchdev != b.Switchdev || a.SwitchID != b.SwitchID || a.PortName != b.PortName || (a.HWTC == nil) != (b.HWTC == nil) {
		return false
	}
	return a.HWTC == nil || *a.HWTC == *b.HWTC
}

// PortOffloads publishes the hardware offload of the interfaces Links
// last published (others are ignored: their interface is not in the
// tree). An interface not in ps keeps what it had; one Links deletes is
// forgotten there (the interface's deletion takes the leaves).
func (t *Tree) PortOffloads(ps map[string]platform.PortOffload) error {
	if t.plat.ports == nil {
		t.plat.ports = map[string]platform.PortOffload{}
	}
	var errs joinErrs
	for _, name := range slices.Sorted(maps.Keys(ps)) {
		p := ps[name]
		if _, ok := t.links[name]; !ok {
			continue
		}
		if old, ok := t.plat.ports[name]; ok && samePort(old, p) {
			continue
		}
		err := t.publish(hardwarePath(name), InterfaceHardware(p))
		if err == nil {
			t.plat.ports[name] = p
		} else {
			delete(t.plat.ports, name) // published whole next time
		}
		errs.add(err)
	}
	return errs.err()
}

// forgetHardware drops what was published of an interface's hardware:
// Links deleted the interface, and its leaves with it.
func (t *Tree) forgetHardware(name string) {
	delete(t.plat.ports, name)
	delete(t.subtrees, pathString(hardwarePath(name)))
}

func hardwarePath(name string) []*gpb.PathElem {
	return append(interfacePath(name), elem("state"), elem("hardware"))
}

// InterfaceHardware renders an interface's hardware offload.
func InterfaceHardware(p platform.PortOffload) *oc.Interface_Hardware {
	h := &oc.Interface_Hardware{Switchdev: ygot.Bool(p.Switchdev)}
	if p.Switchdev {
		h.SwitchId = ygot.String(p.SwitchID)
		if p.PortName != "" {
			h.PortName = ygot.String(p.PortName)
		}
	}
	if p.HWTC != nil {
		h.HwTcOffload = ygot.Bool(p.HWTC.Active)
		h.HwTcOffloadFixed = ygot.Bool(p.HWTC.Fixed)
	}
	return h
}

package daemon

import (
	"cmp"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/platform"
)

// The platform in the state tree: platform.Detect runs once (at the
// first Apply or the first sample, whichever comes first), its warnings
// logged and published under /switchd/state/platform; every sample
// refreshes the readings (temperatures, memory, ports' oper state) and
// renders /components, and each interface's hardware offload (switchdev
// identity from sysfs, hw-tc-offload from ethtool) is read when the
// interface first appears and every portRefresh after.

// portRefresh is how often an interface's hardware offload is read
// again: it changes only by `ethtool -K` or a driver reload, and a
// server with a thousand workload veths should not pay a thousand
// ethtool requests a second.
const portRefresh = time.Minute

// platformLoop is the loop's side of the platform.
type platformLoop struct {
	detected bool
	root     string
	machine  platform.Machine
	warns    []platform.Warning
	// ports are the interfaces' offloads as last read, by name.
	ports map[string]portSeen
	// featuresErr is the last error opening ethtool's netlink family,
	// logged once.
	featuresErr string
}

type portSeen struct {
	index int
	read  time.Time
	off   platform.PortOffload
}

// detectPlatform runs platform.Detect under Options.PlatformRoot (or
// "/") once, and logs what it found and its warnings.
func (d *Daemon) detectPlatform() *platformLoop {
	p := &d.st.plat
	if p.detected {
		return p
	}
	p.detected = true
	p.root = cmp.Or(d.opts.PlatformRoot, "/")
	p.machine, p.warns = platform.Detect(p.root)
	p.ports = map[string]portSeen{}
	m := p.machine
	d.log.Info("platform detected", "root", p.root, "kind", m.Kind, "vendor", m.Vendor, "model", m.Model,
		"serial", m.Serial, "asic", m.ASIC, "switchdev-ports", len(m.Ports))
	for _, w := range p.warns {
		d.log.Warn("platform detection", "path", w.Path, "warning", w.Msg)
	}
	return p
}

// hasASIC says whether the machine has a switch ASIC that offloads the
// FIB: then every AFT entry carries its hardware flags from the start.
func (p *platformLoop) hasASIC() bool {
	return p.machine.Kind == platform.KindSwitch || len(p.machine.Ports) > 0
}

// samplePlatform refreshes the machine's readings and renders it (the
// first sample renders what Detect read).
func (d *Daemon) samplePlatform() {
	if d.st.tree == nil {
		return
	}
	first := !d.st.plat.detected
	p := d.detectPlatform()
	if !first {
		p.machine.Refresh(p.root)
	}
	d.stateErr("platform", d.st.tree.Platform(p.machine, p.warns))
}

// samplePortOffloads renders the hardware offload of the links a sample
// read: read for a link not seen before (or with a new ifindex), or
// last read portRefresh ago. The ethtool socket is opened only when a
// link is due, and closed after.
func (d *Daemon) samplePortOffloads(ls []platform.LinkStats) {
	if d.st.tree == nil {
		return
	}
	p := d.detectPlatform()
	now := time.Now()
	var fr *platform.FeatureReader
	defer func() {
		if fr != nil {
			fr.Close()
		}
	}()
	tried := false
	out := make(map[string]platform.PortOffload, len(ls))
	for _, l := range ls {
		s, ok := p.ports[l.Name]
		if ok && s.index == l.Index && now.Sub(s.read) < portRefresh {
			out[l.Name] = s.off
			continue
		}
		if !tried {
			tried = true
			var err error
			if fr, err = platform.NewFeatureReader(nil); err != nil {
				fr = nil
				if msg := err.Error(); msg != p.featuresErr {
					p.featuresErr = msg
					d.log.Warn("interfaces' hw-tc-offload not read", "err", err)
				}
			}
		}
		s = portSeen{index: l.Index, read: now, off: platform.SwitchdevPort(p.root, l.Name)}
		if fr != nil {
			if f, err := fr.Feature(l.Name, platform.HWTCOffload); err == nil {
				s.off.HWTC = &f
			} else {
				d.log.Debug("hw-tc-offload not read", "interface", l.Name, "err", err)
			}
		}
		p.ports[l.Name] = s
		out[l.Name] = s.off
	}
	if len(p.ports) > len(out) {
		for name := range p.ports {
			if _, ok := out[name]; !ok {
				delete(p.ports, name)
			}
		}
	}
	d.stateErr("interfaces hardware", d.st.tree.PortOffloads(out))
}

// offloadCounts are the FIB's routes by hardware flag (zero for a table
// that does not count them: the tests' fakes).
func (d *Daemon) offloadCounts() fib.OffloadCounts {
	if c, ok := d.table.(interface{ OffloadCounts() fib.OffloadCounts }); ok {
		return c.OffloadCounts()
	}
	return fib.OffloadCounts{}
}

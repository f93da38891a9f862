package platform

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kind is what sort of machine switchd runs on.
type Kind int

const (
	KindServer Kind = iota
	KindVirtual
	KindSwitch // an ONIE white-box switch with a switchdev ASIC
)

func (k Kind) String() string {
	switch k {
	case KindSwitch:
		return "switch"
	case KindVirtual:
		return "virtual"
	}
	return "server"
}

// Warning is something detection could not read or had to guess; it is
// returned rather than logged so the caller decides where it goes.
type Warning struct {
	Path string // file inside the root
	Msg  string
}

func (w Warning) String() string { return w.Path + ": " + w.Msg }

// Port is one switchdev front-panel port.
type Port struct {
	Netdev     string // kernel name, e.g. swp1
	FrontPanel string // port1, or port1/2 for a split port (from phys_port_name p1s2)
	SwitchID   string // phys_switch_id: ports of one ASIC share it
	PortName   string // phys_port_name as the driver reports it
	Driver     string // mlxsw_spectrum, prestera, ...
	Up         bool   // operstate up
}

// Sensor is one hwmon reading.
type Sensor struct {
	Name    string  // hwmon chip name / label, unique within the machine
	Celsius float64 // temp*_input / 1000
}

// Fan is one hwmon fan.
type Fan struct {
	Name string
	RPM  uint64
}

// PowerSupply is an hwmon chip that reports power (power*_input).
type PowerSupply struct {
	Name  string
	Watts float64
}

// Machine is what Detect found.
type Machine struct {
	Kind        Kind
	Vendor      string
	Model       string
	Serial      string
	ASIC        string // NVIDIA Spectrum, Marvell Prestera; empty off a switch
	ASICVendor  string
	ONIE        map[string]string // machine.conf as read; nil if absent or malformed
	CPUs        []string          // model name per logical CPU
	MemTotal    uint64            // bytes
	MemAvail    uint64            // bytes
	Ports       []Port            // switchdev ports, by front-panel order
	Sensors     []Sensor
	Fans        []Fan
	PowerSupply []PowerSupply
}

// machineConfPaths are where ONIE leaves machine.conf: /host in the NOS
// (the ONIE partition mounted), /etc inside ONIE itself.
var machineConfPaths = []string{"host/machine.conf", "etc/machine.conf"}

// Detect reads the machine under root ("/" on a real box). It never fails:
// what it cannot read becomes a Warning and a more modest classification.
func Detect(root string) (Machine, []Warning) {
	if root == "" {
		root = "/"
	}
	var m Machine
	var warns []Warning
	warn := func(p, f string, a ...any) { warns = append(warns, Warning{Path: "/" + p, Msg: fmt.Sprintf(f, a...)}) }

	onieAt := ""
	for _, p := range machineConfPaths {
		b, err := os.ReadFile(filepath.Join(root, p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		onieAt = p
		if err != nil {
			warn(p, "unreadable (%v); not treated as a switch", err)
			break
		}
		conf, err := ParseMachineConf(b)
		if err != nil {
			warn(p, "malformed ONIE machine.conf (%v); not treated as a switch", err)
			break
		}
		m.ONIE = conf
		break
	}
	if onieAt == "" {
		warns = append(warns, Warning{Path: "/" + machineConfPaths[0], Msg: "no ONIE machine.conf here or in /etc; classified as server or virtual machine"})
	}

	dmi := func(f string) string { return readTrim(filepath.Join(root, "sys/class/dmi/id", f)) }
	m.Vendor, m.Model, m.Serial = dmi("sys_vendor"), dmi("product_name"), dmi("product_serial")

	m.Ports = readPorts(root)
	m.CPUs, m.Kind = readCPUs(root, &m)
	b, _ := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	m.MemTotal, _, m.MemAvail = ParseMeminfo(b)
	readHwmon(root, &m)

	if m.ONIE != nil {
		if m.Model == "" {
			m.Model = m.ONIE["onie_machine"]
		}
		if m.Vendor == "" {
			m.Vendor = onieVendor(m.ONIE["onie_machine"])
		}
		m.ASICVendor, m.ASIC = asicOf(m.ONIE["onie_switch_asic"], m.Ports)
		if m.ASIC != "" || len(m.Ports) > 0 {
			m.Kind = KindSwitch
		} else {
			warn(onieAt, "ONIE machine.conf names no switch ASIC and no switchdev port exists; classified as server or virtual machine")
		}
	} else if len(m.Ports) > 0 {
		warn("sys/class/net", "%d switchdev ports but no valid ONIE machine.conf; classified as server or virtual machine", len(m.Ports))
	}
	return m, warns
}

// ParseMachineConf reads ONIE's machine.conf: shell assignments key=value,
// values optionally quoted, # comments and blank lines ignored. Anything
// else is an error so a corrupt file is not half-believed.
func ParseMachineConf(b []byte) (map[string]string, error) {
	conf := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("line %d: not a key=value assignment: %.40q", i+1, line)
		}
		if n := len(v); n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n-1] == v[0] {
			v = v[1 : n-1]
		} else if strings.ContainsAny(v, "\"'") {
			return nil, fmt.Errorf("line %d: unbalanced quote in %s", i+1, k)
		}
		conf[k] = v
	}
	if conf["onie_platform"] == "" && conf["onie_machine"] == "" {
		return nil, errors.New("neither onie_platform nor onie_machine is set")
	}
	return conf, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// onieVendor names the vendor from onie_machine's prefix (mlnx_msn2700)
// when DMI does not (ARM boxes have no DMI).
func onieVendor(machine string) string {
	prefix, _, _ := strings.Cut(machine, "_")
	switch prefix {
	case "mlnx", "nvidia":
		return "NVIDIA"
	case "marvell":
		return "Marvell"
	}
	return prefix
}

// asicOf names the switch ASIC from onie_switch_asic, refined by the
// switchdev driver the ports are bound to.
func asicOf(onieASIC string, ports []Port) (vendor, family string) {
	driver := ""
	if len(ports) > 0 {
		driver = ports[0].Driver
	}
	switch {
	case strings.HasPrefix(driver, "mlxsw_spectrum"):
		gen := strings.TrimPrefix(driver, "mlxsw_spectrum")
		if gen != "" {
			return "NVIDIA", "Spectrum-" + gen
		}
		return "NVIDIA", "Spectrum"
	case driver == "prestera":
		return "Marvell", "Prestera"
	}
	switch onieASIC {
	case "mlnx":
		return "NVIDIA", "Spectrum"
	case "marvell":
		return "Marvell", "Prestera"
	case "":
		return "", ""
	}
	return onieASIC, onieASIC
}

// readPorts lists the netdevs with a phys_switch_id: switchdev ports.
func readPorts(root string) []Port {
	dir := filepath.Join(root, "sys/class/net")
	ents, _ := os.ReadDir(dir)
	var ports []Port
	for _, e := range ents {
		d := filepath.Join(dir, e.Name())
		id := readTrim(filepath.Join(d, "phys_switch_id"))
		if id == "" {
			continue
		}
		pn := readTrim(filepath.Join(d, "phys_port_name"))
		ports = append(ports, Port{
			Netdev: e.Name(), SwitchID: id, PortName: pn, FrontPanel: frontPanel(pn, e.Name()),
			Driver: driverOf(d), Up: readTrim(filepath.Join(d, "operstate")) == "up",
		})
	}
	sort.Slice(ports, func(i, j int) bool { return portLess(ports[i].PortName, ports[j].PortName) })
	return ports
}

// driverOf is the basename of the device/driver symlink; a plain file
// named device/driver holding the name is accepted too, for trees copied
// by tools that do not keep symlinks.
func driverOf(netdir string) string {
	p := filepath.Join(netdir, "device/driver")
	if t, err := os.Readlink(p); err == nil {
		return filepath.Base(t)
	}
	return readTrim(p)
}

// frontPanel turns phys_port_name p3 into port3 and p3s1 (a split port)
// into port3/1; names it does not recognise fall back to the netdev name.
func frontPanel(pn, netdev string) string {
	n, s, ok := splitPortName(pn)
	if !ok {
		return netdev
	}
	if s >= 0 {
		return fmt.Sprintf("port%d/%d", n, s)
	}
	return fmt.Sprintf("port%d", n)
}

func splitPortName(pn string) (n, s int, ok bool) {
	rest, found := strings.CutPrefix(pn, "p")
	if !found {
		return 0, 0, false
	}
	num, sub, split := strings.Cut(rest, "s")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, 0, false
	}
	if !split {
		return n, -1, true
	}
	s, err = strconv.Atoi(sub)
	return n, s, err == nil && s >= 0
}

// portLess orders p2 before p10, falling back to string order.
func portLess(a, b string) bool {
	an, as, aok := splitPortName(a)
	bn, bs, bok := splitPortName(b)
	if aok && bok {
		if an != bn {
			return an < bn
		}
		return as < bs
	}
	return a < b
}

// readCPUs takes one model name per "processor" stanza of /proc/cpuinfo
// and calls the machine virtual if DMI or the CPU flags say so.
func readCPUs(root string, m *Machine) ([]string, Kind) {
	kind := KindServer
	for _, s := range []string{"QEMU", "KVM", "VMware", "VirtualBox", "Xen", "Standard PC", "Virtual Machine", "Bochs"} {
		if strings.Contains(m.Vendor+" "+m.Model, s) {
			kind = KindVirtual
		}
	}
	f, err := os.Open(filepath.Join(root, "proc/cpuinfo"))
	if err != nil {
		return nil, kind
	}
	defer f.Close()
	var cpus []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			cpus = append(cpus, "")
		case "model name":
			if len(cpus) > 0 {
				cpus[len(cpus)-1] = v
			}
		case "flags":
			if strings.Contains(" "+v+" ", " hypervisor ") {
				kind = KindVirtual
			}
		}
	}
	return cpus, kind
}

// ParseMeminfo reads /proc/meminfo's MemTotal, MemFree and MemAvailable
// (kB there) in bytes; a missing or malformed line reads as 0.
func ParseMeminfo(b []byte) (total, free, avail uint64) {
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = v * 1024
		case "MemFree:":
			free = v * 1024
		case "MemAvailable:":
			avail = v * 1024
		}
	}
	return total, free, avail
}

// readHwmon collects temperatures, fans and power readings. Names are
// "<chip>/<label>" (or the attribute name without a label) so they stay
// unique across chips.
func readHwmon(root string, m *Machine) {
	dir := filepath.Join(root, "sys/class/hwmon")
	ents, _ := os.ReadDir(dir)
	sort.Slice(ents, func(i, j int) bool { return natLess(ents[i].Name(), ents[j].Name()) })
	for _, e := range ents {
		d := filepath.Join(dir, e.Name())
		chip := readTrim(filepath.Join(d, "name"))
		if chip == "" {
			chip = e.Name()
		}
		for _, attr := range globSorted(d, "temp*_input") {
			v, ok := readInt(attr)
			if ok {
				m.Sensors = append(m.Sensors, Sensor{Name: chip + "/" + label(attr), Celsius: float64(v) / 1000})
			}
		}
		for _, attr := range globSorted(d, "fan*_input") {
			if v, ok := readInt(attr); ok && v >= 0 {
				m.Fans = append(m.Fans, Fan{Name: chip + "/" + label(attr), RPM: uint64(v)})
			}
		}
		if p := globSorted(d, "power*_input"); len(p) > 0 {
			if v, ok := readInt(p[0]); ok {
				m.PowerSupply = append(m.PowerSupply, PowerSupply{Name: chip, Watts: float64(v) / 1e6})
			}
		}
	}
}

// label is tempN_label's content, or tempN when there is none.
func label(input string) string {
	base := strings.TrimSuffix(filepath.Base(input), "_input")
	if l := readTrim(filepath.Join(filepath.Dir(input), base+"_label")); l != "" {
		return l
	}
	return base
}

func globSorted(dir, pat string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, pat))
	sort.Slice(m, func(i, j int) bool { return natLess(m[i], m[j]) })
	return m
}

// natLess orders hwmon2 before hwmon10 and temp2_input before
// temp10_input: the first run of digits compares as a number.
func natLess(a, b string) bool {
	ap, an, as := splitNum(a)
	bp, bn, bs := splitNum(b)
	if ap != bp || an == bn {
		if ap == bp {
			return as < bs
		}
		return a < b
	}
	return an < bn
}

func splitNum(s string) (prefix string, n int, suffix string) {
	i := strings.IndexAny(s, "0123456789")
	if i < 0 {
		return s, -1, ""
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(s[i:j])
	if err != nil {
		return s, -1, ""
	}
	return s[:i], n, s[j:]
}

func readInt(p string) (int64, bool) {
	v, err := strconv.ParseInt(readTrim(p), 10, 64)
	return v, err == nil
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

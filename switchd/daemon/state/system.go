package state

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
)

// SystemSample is the machine and switchd's own process at one moment,
// from /proc.
type SystemSample struct {
	Time     time.Time
	Hostname string
	BootTime time.Time
	// Memory in bytes (/proc/meminfo).
	MemTotal, MemFree, MemAvailable uint64
	// CPUs is the utilisation since the previous sample, all CPUs first
	// (Index -1), then each; empty on the first sample.
	CPUs    []CPUUsage
	Process ProcessSample
}

// CPUUsage is one CPU's (or all CPUs', Index -1) share of time in
// percent over Interval.
type CPUUsage struct {
	Index                                int
	Interval                             time.Duration
	Total, User, Nice, Kernel, Idle      uint8
	Wait, HardwareInterrupt, SoftwareIRQ uint8
}

// ProcessSample is switchd's own process.
type ProcessSample struct {
	PID       int
	Name      string
	Args      []string
	StartTime time.Time
	// CPUUser and CPUSystem are the CPU time used so far; CPUPercent is
	// the share of one CPU since the previous sample.
	CPUUser, CPUSystem time.Duration
	CPUPercent         uint8
	RSS                uint64 // bytes
}

// userHZ is the unit of /proc's tick counts: USER_HZ is 100 on every
// Linux architecture switchd runs on.
const userHZ = 100

// SystemSampler reads SystemSamples from a /proc tree; it keeps the
// previous CPU counters to turn them into utilisation. Its methods should
// only be called from one goroutine.
type SystemSampler struct {
	root string // "/" or a fake tree
	pid  int

	prevTime time.Time
	prevCPU  map[int][8]uint64 // by index, -1 for all
	prevProc uint64            // utime+stime ticks
}

// NewSystemSampler reads /proc under root (tests give a fake tree) for
// the process pid.
func NewSystemSampler(root string, pid int) *SystemSampler {
	return &SystemSampler{root: root, pid: pid}
}

func (s *SystemSampler) read(path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.root, path))
}

// Sample reads the system's state now.
func (s *SystemSampler) Sample(now time.Time) (SystemSample, error) {
	out := SystemSample{Time: now}
	out.Hostname, _ = os.Hostname()
	if b, err := s.read("proc/sys/kernel/hostname"); err == nil {
		out.Hostname = strings.TrimSpace(string(b))
	}
	stat, err := s.read("proc/stat")
	if err != nil {
		return out, err
	}
	cpus, btime := parseProcStat(stat)
	out.BootTime = time.Unix(btime, 0)
	mem, err := s.read("proc/meminfo")
	if err != nil {
		return out, err
	}
	out.MemTotal, out.MemFree, out.MemAvailable = platform.ParseMeminfo(mem)
	pstat, err := s.read(fmt.Sprintf("proc/%d/stat", s.pid))
	if err != nil {
		return out, err
	}
	p, ticks, err := parsePidStat(pstat, out.BootTime)
	if err != nil {
		return out, err
	}
	p.PID = s.pid
	if b, err := s.read(fmt.Sprintf("proc/%d/cmdline", s.pid)); err == nil {
		p.Args = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	if s.prevCPU != nil {
		dt := now.Sub(s.prevTime)
		for _, idx := range slices.Sorted(maps.Keys(cpus)) { // -1 (all) first
			if prev, ok := s.prevCPU[idx]; ok {
				out.CPUs = append(out.CPUs, cpuUsage(idx, prev, cpus[idx], dt))
			}
		}
		if dt > 0 {
			used := time.Duration(ticks-s.prevProc) * time.Second / userHZ
			p.CPUPercent = uint8(min(100, 100*used/dt))
		}
	}
	out.Process = p
	s.prevTime, s.prevCPU, s.prevProc = now, cpus, ticks
	return out, nil
}

// parseProcStat reads the cpu lines (user nice system idle iowait irq
// softirq steal, in ticks; "cpu" is index -1) and btime.
func parseProcStat(b []byte) (cpus map[int][8]uint64, btime int64) {
	cpus = map[int][8]uint64{}
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		switch {
		case f[0] == "btime":
			btime, _ = strconv.ParseInt(f[1], 10, 64)
		case strings.HasPrefix(f[0], "cpu"):
			idx := -1
			if f[0] != "cpu" {
				n, err := strconv.Atoi(f[0][3:])
				if err != nil {
					continue
				}
				idx = n
			}
			var v [8]uint64
			for i := 0; i < 8 && i+1 < len(f); i++ {
				v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
			}
			cpus[idx] = v
		}
	}
	return cpus, btime
}

// cpuUsage turns two readings of a CPU's ticks into percentages.
func cpuUsage(idx int, prev, cur [8]uint64, dt time.Duration) CPUUsage {
	var d [8]uint64
	var all uint64
	for i := range d {
		if cur[i] > prev[i] {
			d[i] = cur[i] - prev[i]
		}
		all += d[i]
	}
	pct := func(v uint64) uint8 {
		if all == 0 {
			return 0
		}
		return uint8(100 * v / all)
	}
	idle := d[3] + d[4]
	return CPUUsage{Index: idx, Interval: dt, Total: pct(all - idle), User: pct(d[0]), Nice: pct(d[1]),
		Kernel: pct(d[2]), Idle: pct(d[3]), Wait: pct(d[4]), HardwareInterrupt: pct(d[5]), SoftwareIRQ: pct(d[6])}
}

// parsePidStat reads /proc/PID/stat: the name, CPU times, start time and
// RSS; ticks is utime+stime.
func parsePidStat(b []byte, boot time.Time) (p ProcessSample, ticks uint64, err error) {
	// The name is in parentheses and may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return p, 0, fmt.Errorf("process stat %q: no name", b)
	}
	p.Name = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, starttime
	// 22, rss (pages) 24.
	if len(f) < 22 {
		return p, 0, fmt.Errorf("process stat: %d fields", len(f)+2)
	}
	num := func(field int) uint64 { v, _ := strconv.ParseUint(f[field-3], 10, 64); return v }
	ut, st := num(14), num(15)
	p.CPUUser = time.Duration(ut) * time.Second / userHZ
	p.CPUSystem = time.Duration(st) * time.Second / userHZ
	p.StartTime = boot.Add(time.Duration(num(22)) * time.Second / userHZ)
	p.RSS = num(24) * uint64(os.Getpagesize())
	return p, ut + st, nil
}

// System publishes a sample under /system.
func (t *Tree) System(s SystemSample) error {
	return t.publish([]*gpb.PathElem{elem("system")}, System(s))
}

// System renders a sample as /system state: hostname, boot time, current
// date and time, up-time, memory (physical, used = physical - available,
// free, available), CPU utilisation (cpus/cpu[index=ALL] and each CPU,
// instant values over the sample interval) and switchd's own process.
func System(s SystemSample) *oc.System {
	o := &oc.System{
		CurrentDatetime: ygot.String(s.Time.Format(time.RFC3339)),
		Memory: &oc.System_Memory{Physical: ygot.Uint64(s.MemTotal), Free: ygot.Uint64(s.MemFree),
			Available: ygot.Uint64(s.MemAvailable), Used: ygot.Uint64(s.MemTotal - min(s.MemAvailable, s.MemTotal))},
	}
	if s.Hostname != "" {
		o.Hostname = ygot.String(s.Hostname)
	}
	if s.BootTime.Unix() > 0 {
		o.BootTime = ygot.Uint64(uint64(s.BootTime.UnixNano()))
		o.UpTime = ygot.Uint64(uint64(s.Time.Sub(s.BootTime)))
	}
	for _, c := range s.CPUs {
		var idx oc.System_Cpu_Index_Union = oc.Cpu_Index_Enum_ALL
		if c.Index >= 0 {
			idx = oc.UnionUint32(c.Index)
		}
		cpu, err := o.NewCpu(idx)
		if err != nil {
			continue // a repeated index: the first stays
		}
		cpu.Total = &oc.System_Cpu_Total{Instant: ygot.Uint8(c.Total), Interval: ygot.Uint64(uint64(c.Interval))}
		cpu.User = &oc.System_Cpu_User{Instant: ygot.Uint8(c.User)}
		cpu.Nice = &oc.System_Cpu_Nice{Instant: ygot.Uint8(c.Nice)}
		cpu.Kernel = &oc.System_Cpu_Kernel{Instant: ygot.Uint8(c.Kernel)}
		cpu.Idle = &oc.System_Cpu_Idle{Instant: ygot.Uint8(c.Idle)}
		cpu.Wait = &oc.System_Cpu_Wait{Instant: ygot.Uint8(c.Wait)}
		cpu.HardwareInterrupt = &oc.System_Cpu_HardwareInterrupt{Instant: ygot.Uint8(c.HardwareInterrupt)}
		cpu.SoftwareInterrupt = &oc.System_Cpu_SoftwareInterrupt{Instant: ygot.Uint8(c.SoftwareIRQ)}
	}
	if p := s.Process; p.PID > 0 {
		pr := o.GetOrCreateProcess(uint64(p.PID))
		pr.Name = ygot.String(p.Name)
		pr.Args = p.Args
		pr.StartTime = ygot.Uint64(uint64(p.StartTime.UnixNano()))
		pr.CpuUsageUser = ygot.Uint64(uint64(p.CPUUser))
		pr.CpuUsageSystem = ygot.Uint64(uint64(p.CPUSystem))
		pr.CpuUtilization = ygot.Uint8(p.CPUPercent)
		pr.MemoryUsage = ygot.Uint64(p.RSS)
		if s.MemTotal > 0 {
			pr.MemoryUtilization = ygot.Uint8(uint8(min(100, 100*p.RSS/s.MemTotal)))
		}
	}
	return o
}

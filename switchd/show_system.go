package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/switchd/switchd/models/oc"
)

func showSystem(ctx context.Context, c *daemonClient, o showOutput) error {
	d, err := c.device(ctx, "/system/state", "/system/memory", "/system/cpus", "/system/processes", "/switchd/state")
	if err != nil {
		return err
	}
	t := renderSystem(d.GetSystem(), d.GetSwitchd())
	if o.json {
		return t.writeJSON(o.w)
	}
	return t.writeRecords(o.w)
}

// renderSystem is one row: the host's name, clock and uptime, memory in
// bytes, the CPUs' utilisation in percent over the last sample (all of
// them together) and switchd's process (the one process the state tree
// has), and switchd's own status: whether fib and policy are in sync
// with the kernel, their sizes and last errors.
func renderSystem(s *oc.System, sw *oc.Switchd) *table {
	t := newTable("Hostname", "Current time", "Boot time", "Uptime",
		"Memory physical", "Memory used", "Memory free", "Memory available",
		"CPU total", "CPU user", "CPU kernel", "CPU wait", "CPU idle",
		"Process", "PID", "Process CPU", "Process memory", "Process started",
		"FIB in sync", "FIB routes", "FIB nexthop groups", "FIB stale", "FIB last resync", "FIB last error",
		"Policy in sync", "Policy rules", "Policy last apply", "Policy last error")
	if s == nil {
		s = &oc.System{}
	}
	var uptime any
	if s.UpTime != nil {
		uptime = fmtUptime(time.Duration(*s.UpTime))
	}
	var mem [4]any
	if m := s.GetMemory(); m != nil {
		mem = [4]any{bytesOf(m.Physical), bytesOf(m.Used), bytesOf(m.Free), bytesOf(m.Available)}
	}
	cpu := s.GetCpu(oc.Cpu_Index_Enum_ALL)
	var pct [5]any
	if cpu != nil {
		pct = [5]any{percent(cpu.GetTotal().GetInstant()), percent(cpu.GetUser().GetInstant()), percent(cpu.GetKernel().GetInstant()),
			percent(cpu.GetWait().GetInstant()), percent(cpu.GetIdle().GetInstant())}
	}
	var proc [5]any
	if pids := slices.Sorted(maps.Keys(s.Process)); len(pids) > 0 {
		p := s.Process[pids[0]]
		var cpu any
		if p.CpuUtilization != nil {
			cpu = percent(*p.CpuUtilization)
		}
		proc = [5]any{p.Name, pids[0], cpu, bytesOf(p.MemoryUsage), fmtTime(p.StartTime)}
	}
	var fib [6]any
	var pol [4]any
	if f := sw.GetFib(); f != nil {
		fib = [6]any{f.InSync, f.Routes, f.NexthopGroups, f.Stale, f.LastResync, f.LastError}
	}
	if p := sw.GetPolicy(); p != nil {
		pol = [4]any{p.InSync, p.Rules, p.LastApply, p.LastError}
	}
	t.add(s.Hostname, s.CurrentDatetime, fmtTime(s.BootTime), uptime,
		mem[0], mem[1], mem[2], mem[3],
		pct[0], pct[1], pct[2], pct[3], pct[4],
		proc[0], proc[1], proc[2], proc[3], proc[4],
		fib[0], fib[1], fib[2], fib[3], fib[4], fib[5],
		pol[0], pol[1], pol[2], pol[3])
	return t
}

// byteSize is a size in bytes: in binary units for people, a number in
// JSON.
type byteSize uint64

func (b byteSize) String() string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", uint64(b))
	}
	v, i := float64(b)/unit, 0
	for ; v >= unit && i < 5; i++ {
		v /= unit
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i])
}

// bytesOf is a leaf's byte count as a byteSize, nil if unset.
func bytesOf(p *uint64) any {
	if p == nil {
		return nil
	}
	return byteSize(*p)
}

// percent is a share in percent: "12%" for people, a number in JSON.
type percent uint8

func (p percent) String() string { return fmt.Sprintf("%d%%", uint8(p)) }

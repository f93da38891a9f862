package main

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/switchd/switchd/models/oc"
)

func showSystem(ctx context.Context, c *daemonClient, o showOutput) error {
	d, err := c.device(ctx, "/system/state", "/system/memory", "/system/cpus", "/system/processes")
	if err != nil {
		return err
	}
	t := renderSystem(d.GetSystem())
	if o.json {
		return t.writeJSON(o.w)
	}
	return t.writeRecords(o.w)
}

// renderSystem is one row: the host's name, clock and uptime, memory in
// bytes, the CPUs' utilisation in percent over the last sample (all of
// them together) and switchd's process (the one process the state tree
// has).
func renderSystem(s *oc.System) *table {
	t := newTable("Hostname", "Current time", "Boot time", "Uptime",
		"Memory physical", "Memory used", "Memory free", "Memory available",
		"CPU total", "CPU user", "CPU kernel", "CPU wait", "CPU idle",
		"Process", "PID", "Process CPU", "Process memory", "Process started")
	if s == nil {
		s = &oc.System{}
	}
	var uptime any
	if s.UpTime != nil {
		uptime = fmtUptime(time.Duration(*s.UpTime))
	}
	var mem [4]any
	if m := s.GetMemory(); m != nil {
		mem = [4]any{m.Physical, m.Used, m.Free, m.Available}
	}
	cpu := s.GetCpu(oc.Cpu_Index_Enum_ALL)
	var pct [5]any
	if cpu != nil {
		pct = [5]any{cpu.GetTotal().GetInstant(), cpu.GetUser().GetInstant(), cpu.GetKernel().GetInstant(), cpu.GetWait().GetInstant(), cpu.GetIdle().GetInstant()}
	}
	var proc [5]any
	if pids := slices.Sorted(maps.Keys(s.Process)); len(pids) > 0 {
		p := s.Process[pids[0]]
		proc = [5]any{p.Name, pids[0], p.CpuUtilization, p.MemoryUsage, fmtTime(p.StartTime)}
	}
	t.add(s.Hostname, s.CurrentDatetime, fmtTime(s.BootTime), uptime,
		mem[0], mem[1], mem[2], mem[3],
		pct[0], pct[1], pct[2], pct[3], pct[4],
		proc[0], proc[1], proc[2], proc[3], proc[4])
	return t
}

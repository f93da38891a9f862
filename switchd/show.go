package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
)

const showUsage = `usage: switchd show [--json] [--gnmi-socket PATH] WHAT [ARG]

Reads the running daemon's state over its local gNMI socket.

  interfaces               links: admin and oper status, MTU, counters, addresses
  bgp [summary]            one line per BGP neighbor (as FRR's show bgp summary)
  bgp neighbors [ADDR]     each neighbor in detail, or the one at ADDR
  bfd                      BFD sessions: peer, link, state, the peer's state, last
                           diagnostic, discriminators, ups, failures, packets
  route [PREFIX|ADDR]      the forwarding table (AFT) as programmed in the kernel:
                           prefix, next hops and interfaces; a prefix shows that
                           entry, an address the longest prefix holding it
  endpoints                workload endpoints (containers, VMs)
  acl                      ACL entries' matched packets and bytes
  system                   hostname, time, uptime, memory, CPU, switchd's process
  platform                 the machine: kind (switch, server, virtual), vendor, model,
                           serial, ASIC, front-panel ports, sensors, detection warnings
  kubernetes               cluster mode: node, informers synced, API requests
                           without an answer, NetworkPolicies, parts left out;
                           read from the local API (--socket), not gNMI

--json prints the table's rows as a JSON array of objects, one per row,
keys the column names in lower case ("state/pfxrcd", "in-pkts"), numbers as
numbers, lists as arrays and missing values as null; show route --json
is one object per route: {"prefix", "origin", "next-hops": [{"ip-address",
"interface", "weight"}]}. These keys stay from one version to the next.
For the OpenConfig subtree itself, use switchd get PATH.

flags:
`

// Paths the show commands read.
const (
	bgpStatePath = "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp"
	aftPath      = "/network-instances/network-instance[name=DEFAULT]/afts"
)

// showOutput is where and how a show command prints.
type showOutput struct {
	w    io.Writer
	json bool
	now  time.Time // "up for" is counted to it
	api  string    // the local API socket (show kubernetes)
}

// print writes t as a table or JSON rows.
func (o showOutput) print(t *table) error {
	if o.json {
		return t.writeJSON(o.w)
	}
	return t.write(o.w)
}

func cmdShow(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchd show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), showUsage); fs.PrintDefaults() }
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the rows as JSON (see above)")
	api := fs.String("socket", defaultAPISocket, "the daemon's local API socket, for show kubernetes")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code // flag printed the usage (-h: 0) or the error (2)
	}
	show, err := showCommand(pos)
	if err != nil {
		fmt.Fprintf(stderr, "switchd show: %v\n", err)
		fs.Usage()
		return 2
	}
	run := clientMain
	if pos[0] == "kubernetes" {
		run = apiMain // show_kubernetes.go
	}
	return run("switchd show", cf, stderr, func(ctx context.Context, c *daemonClient) error {
		return show(ctx, c, showOutput{w: stdout, json: *asJSON, now: time.Now(), api: *api})
	})
}

type showFunc func(ctx context.Context, c *daemonClient, o showOutput) error

// showCommand picks the command for the positional arguments, or says
// why they are not one.
func showCommand(pos []string) (showFunc, error) {
	if len(pos) == 0 {
		return nil, fmt.Errorf("what to show?")
	}
	arg := func(n int) (string, error) { // the optional argument after n words
		switch {
		case len(pos) == n:
			return "", nil
		case len(pos) == n+1:
			return pos[n], nil
		}
		return "", fmt.Errorf("unexpected arguments %q", pos[n+1:])
	}
	none := func(n int, f showFunc) (showFunc, error) {
		if len(pos) > n {
			return nil, fmt.Errorf("unexpected arguments %q", pos[n:])
		}
		return f, nil
	}
	switch pos[0] {
	case "interfaces":
		return none(1, deviceShow(renderInterfaces, "/interfaces"))
	case "bgp":
		if len(pos) == 1 {
			return showBGPSummary, nil
		}
		if pos[1] == "summary" {
			return none(2, showBGPSummary)
		}
		if pos[1] != "neighbors" {
			return nil, fmt.Errorf("unknown: show bgp %s (summary or neighbors)", pos[1])
		}
		addr, err := arg(2)
		if err != nil {
			return nil, err
		}
		return showBGPNeighbors(addr), nil
	case "route":
		target, err := arg(1)
		if err != nil {
			return nil, err
		}
		q, err := parseRouteQuery(target)
		if err != nil {
			return nil, err
		}
		return showRoute(q), nil
	case "endpoints":
		return none(1, deviceShow(renderEndpoints, "/switchd/endpoints"))
	case "acl":
		return none(1, deviceShow(renderACL, "/acl/acl-sets"))
	case "system":
		return none(1, showSystem)
	case "platform":
		return none(1, showPlatform)
	case "bfd":
		return none(1, deviceShow(renderBFD, "/bfd"))
	case "kubernetes":
		return none(1, showKubernetes)
	}
	return nil, fmt.Errorf("unknown: show %s", pos[0])
}

// deviceShow reads paths into a device and prints render's table.
func deviceShow(render func(*oc.Device) *table, paths ...string) showFunc {
	return func(ctx context.Context, c *daemonClient, o showOutput) error {
		d, err := c.device(ctx, paths...)
		if err != nil {
			return err
		}
		return o.print(render(d))
	}
}

// renderInterfaces is one row per interface in ifindex order (as ip link
// lists them): status, MTU, counters and subinterface 0's addresses,
// IPv4 first, link-local IPv6 left out (every interface has one).
func renderInterfaces(d *oc.Device) *table {
	ifs := slices.Collect(maps.Values(d.Interface))
	offload := interfaceOffloads(ifs) // nil: no column (no interface offloads anything)
	cols := []string{"Interface", "Admin", "Oper", "MTU", "In pkts", "Out pkts", "In errors", "Out errors", "In drops", "Out drops", "Addresses"}
	if offload != nil {
		cols = append(cols, "Offload")
	}
	t := newTable(cols...)
	slices.SortFunc(ifs, func(a, b *oc.Interface) int {
		if a.GetIfindex() != b.GetIfindex() {
			return int(a.GetIfindex()) - int(b.GetIfindex())
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
	for _, i := range ifs {
		c := i.GetCounters()
		var addrs []string
		sub := i.GetSubinterface(0)
		if v4 := sub.GetIpv4(); v4 != nil {
			for _, ip := range slices.Sorted(maps.Keys(v4.Address)) {
				addrs = append(addrs, fmt.Sprintf("%s/%d", ip, v4.Address[ip].GetPrefixLength()))
			}
		}
		if v6 := sub.GetIpv6(); v6 != nil {
			for _, ip := range slices.Sorted(maps.Keys(v6.Address)) {
				if strings.HasPrefix(strings.ToLower(ip), "fe80:") {
					continue
				}
				addrs = append(addrs, fmt.Sprintf("%s/%d", ip, v6.Address[ip].GetPrefixLength()))
			}
		}
		var cnt [6]any
		if c != nil {
			cnt = [6]any{c.InPkts, c.OutPkts, c.InErrors, c.OutErrors, c.InDiscards, c.OutDiscards}
		}
		row := []any{i.GetName(), enumText(i.AdminStatus), enumText(i.OperStatus), i.Mtu,
			cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5], addrs}
		if offload != nil {
			row = append(row, offload[i.GetName()])
		}
		t.add(row...)
	}
	return t
}

// enumText is a ygot enum in lower case, nil if unset.
func enumText(e ygot.GoEnum) any {
	if e == nil || reflect.ValueOf(e).Int() == 0 { // UNSET
		return nil
	}
	s, err := ygot.EnumName(e)
	if err != nil || s == "" {
		return nil
	}
	return strings.ToLower(s)
}

// renderEndpoints is one row per workload endpoint, by name.
func renderEndpoints(d *oc.Device) *table {
	t := newTable("Name", "Kind", "Interface", "IPv4", "IPv6", "MAC", "Labels")
	var eps map[string]*oc.Switchd_Endpoint
	if sw := d.GetSwitchd(); sw != nil {
		eps = sw.Endpoint
	}
	for _, name := range slices.Sorted(maps.Keys(eps)) {
		e := eps[name]
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(e.Label)) {
			labels = append(labels, k+"="+e.Label[k].GetValue())
		}
		t.add(name, enumText(e.Kind), e.Interface, e.Ipv4Address, e.Ipv6Address, e.Mac, labels)
	}
	return t
}

// renderACL is one row per ACL entry, by set name, type and sequence id.
func renderACL(d *oc.Device) *table {
	t := newTable("ACL", "Type", "Seq", "Matched pkts", "Matched bytes")
	var sets []*oc.Acl_AclSet
	if a := d.GetAcl(); a != nil {
		sets = slices.Collect(maps.Values(a.AclSet))
	}
	slices.SortFunc(sets, func(a, b *oc.Acl_AclSet) int {
		if c := strings.Compare(a.GetName(), b.GetName()); c != 0 {
			return c
		}
		return int(a.GetType()) - int(b.GetType())
	})
	for _, s := range sets {
		for _, seq := range slices.Sorted(maps.Keys(s.AclEntry)) {
			e := s.AclEntry[seq]
			typ, _ := ygot.EnumName(s.GetType())
			t.add(s.GetName(), strings.TrimPrefix(typ, "ACL_"), seq, e.MatchedPackets, e.MatchedOctets)
		}
	}
	return t
}

// fmtUptime is a duration as routers print one: 01:02:03 under a day,
// then 2d03h04m, then 5w2d03h.
func fmtUptime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	days, h, m, sec := s/86400, s/3600%24, s/60%60, s%60
	switch {
	case days == 0:
		return fmt.Sprintf("%02d:%02d:%02d", h, m, sec)
	case days < 7:
		return fmt.Sprintf("%dd%02dh%02dm", days, h, m)
	}
	return fmt.Sprintf("%dw%dd%02dh", days/7, days%7, h)
}

// fmtTime is a time in nanoseconds since the epoch (a timeticks64 leaf)
// as RFC 3339 in UTC, nil if unset.
func fmtTime(ns *uint64) any {
	if ns == nil {
		return nil
	}
	return time.Unix(0, int64(*ns)).UTC().Format(time.RFC3339)
}

package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/switchd/bgp"
)

// fakePublisher records what a Tree publishes; fail makes Update fail.
type fakePublisher struct {
	ns   []*gpb.Notification
	fail error
}

func (p *fakePublisher) Update(n *gpb.Notification) error {
	if p.fail != nil {
		return p.fail
	}
	p.ns = append(p.ns, n)
	return nil
}

// take returns the leaves updated (full path → value as text) and the
// paths deleted since the last take.
func (p *fakePublisher) take() (updates map[string]string, deletes []string) {
	updates = map[string]string{}
	for _, n := range p.ns {
		for _, u := range n.GetUpdate() {
			updates[PathString(n.GetPrefix(), u.GetPath())] = ValueText(u.GetVal())
		}
		for _, d := range n.GetDelete() {
			deletes = append(deletes, PathString(n.GetPrefix(), d))
		}
	}
	p.ns = nil
	slices.Sort(deletes)
	return updates, deletes
}

// validated is a generated struct.
type validated interface {
	ygot.GoStruct
	Validate(...ygot.ValidationOption) error
}

// rfc7951 is s as JSON_IETF, compacted, and s validated against the
// schema (patterns, ranges, enums).
func rfc7951(t *testing.T, s validated) string {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Errorf("%T does not validate: %v", s, err)
	}
	j, err := ygot.EmitJSON(s, &ygot.EmitJSONConfig{Format: ygot.RFC7951, SkipValidation: true,
		RFC7951Config: &ygot.RFC7951JSONConfig{AppendModuleName: true}})
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(j), &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v) // sorted keys
	return string(out)
}

// compact is JSON s compacted with sorted keys; "T0" stands for t0 in
// nanoseconds.
func compact(s string) string {
	s = strings.ReplaceAll(s, `"T0"`, fmt.Sprintf(`"%d"`, t0.UnixNano()))
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

var t0 = time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)

func swp1() platform.LinkStats {
	return platform.LinkStats{Index: 3, Name: "swp1", Kind: "veth", Type: unix.ARPHRD_ETHER,
		Flags: unix.IFF_UP | unix.IFF_LOWER_UP, OperState: platform.OperUp, MTU: 9000, CarrierChanges: 2,
		Counters: platform.LinkCounters{RxPackets: 10, TxPackets: 20, RxBytes: 1000, TxBytes: 2000,
			RxErrors: 1, TxErrors: 2, RxDropped: 3, TxDropped: 4, Multicast: 5},
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/31"), netip.MustParsePrefix("fe80::1/64")}}
}

// TestInterfaceJSON: a link rendered as OpenConfig state, in JSON_IETF.
func TestInterfaceJSON(t *testing.T) {
	got := rfc7951(t, Interface(swp1(), t0))
	want := compact(`{
	  "openconfig-interfaces:name": "swp1",
	  "openconfig-interfaces:state": {
	    "name": "swp1", "type": "iana-if-type:ethernetCsmacd", "admin-status": "UP", "oper-status": "UP",
	    "enabled": true, "mtu": 9000, "ifindex": 3, "last-change": "T0",
	    "counters": {"in-octets": "1000", "in-pkts": "10", "in-errors": "1", "in-discards": "3",
	      "in-multicast-pkts": "5", "out-octets": "2000", "out-pkts": "20", "out-errors": "2",
	      "out-discards": "4", "carrier-transitions": "2"}},
	  "openconfig-interfaces:subinterfaces": {"subinterface": [{"index": 0, "state": {"index": 0},
	    "openconfig-if-ip:ipv4": {"addresses": {"address": [{"ip": "10.0.0.1", "state": {"ip": "10.0.0.1", "prefix-length": 31}}]}},
	    "openconfig-if-ip:ipv6": {"addresses": {"address": [{"ip": "fe80::1", "state": {"ip": "fe80::1", "prefix-length": 64, "origin": "LINK_LAYER"}}]}}}]}
	}`)
	if got != want {
		t.Errorf("interface state\n got %s\nwant %s", got, want)
	}
	// The loopback: oper UNKNOWN in the kernel is up by its flags; its
	// MTU of 65536 is cut to the model's 65535.
	lo := Interface(platform.LinkStats{Index: 1, Name: "lo", Type: unix.ARPHRD_LOOPBACK, MTU: 65536,
		Flags: unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_LOOPBACK}, time.Time{})
	if lo.OperStatus.String() != "UP" || *lo.Mtu != 65535 || lo.LastChange != nil || lo.Subinterface != nil {
		t.Errorf("lo = oper %v, mtu %d, last-change %v, subinterfaces %v", lo.OperStatus, *lo.Mtu, lo.LastChange, lo.Subinterface)
	}
}

// TestTreeLinks: the interfaces' funnel publishes every leaf once, then
// only what changed; an oper change sets last-change; an address gone
// is deleted leaf by leaf; an interface gone is deleted whole.
func TestTreeLinks(t *testing.T) {
	pub := &fakePublisher{}
	now := t0
	tr := New(pub).WithClock(func() time.Time { return now })
	a := swp1()
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	up, del := pub.take()
	const ifp = "interfaces/interface[name=swp1]"
	for k, v := range map[string]string{
		ifp + "/state/oper-status": "UP", ifp + "/state/counters/in-pkts": "10", ifp + "/state/mtu": "9000",
		ifp + "/subinterfaces/subinterface[index=0]/ipv4/addresses/address[ip=10.0.0.1]/state/prefix-length": "31",
	} {
		if up[k] != v {
			t.Errorf("first sample: %s = %q, want %q", k, up[k], v)
		}
	}
	if _, ok := up[ifp+"/state/last-change"]; ok || len(del) != 0 {
		t.Errorf("first sample: last-change %q (unknown yet), deletes %v", up[ifp+"/state/last-change"], del)
	}

	// Counters move, the carrier goes, an address goes.
	now = now.Add(10 * time.Second)
	a.Counters.RxPackets, a.OperState, a.Flags = 11, platform.OperDown, unix.IFF_UP
	a.Addrs = a.Addrs[1:]
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	up, del = pub.take()
	want := map[string]string{ifp + "/state/counters/in-pkts": "11", ifp + "/state/oper-status": "DOWN",
		ifp + "/state/last-change": fmt.Sprint(now.UnixNano())}
	if fmt.Sprint(up) != fmt.Sprint(want) {
		t.Errorf("second sample published %v, want only %v", up, want)
	}
	addr := ifp + "/subinterfaces/subinterface[index=0]/ipv4/addresses/address[ip=10.0.0.1]"
	if !slices.Equal(del, []string{addr + "/ip", addr + "/state/ip", addr + "/state/prefix-length"}) {
		t.Errorf("second sample deleted %v, want the IPv4 address's leaves", del)
	}

	// Nothing changed: nothing published.
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	if up, del = pub.take(); len(up)+len(del) != 0 {
		t.Errorf("an unchanged sample published %v, deleted %v", up, del)
	}

	// A failed publish is retried whole by the next sample.
	pub.fail = errors.New("cache full")
	a.Counters.TxPackets = 21
	if err := tr.Links([]platform.LinkStats{a}); err == nil || !strings.Contains(err.Error(), "cache full") {
		t.Errorf("failed publish: err %v", err)
	}
	pub.fail = nil
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	if up, _ = pub.take(); up[ifp+"/state/counters/out-pkts"] != "21" || up[ifp+"/state/counters/in-octets"] != "1000" {
		t.Errorf("after a failure the next sample published %v, want the counters whole", up)
	}

	// A wall clock stepped back does not make older notifications: the
	// cache would drop them as stale.
	last := tr.lastTS
	now = now.Add(-time.Hour)
	a.Counters.TxPackets = 22
	if err := tr.Links([]platform.LinkStats{a}); err != nil {
		t.Fatal(err)
	}
	if ts := pub.ns[len(pub.ns)-1].GetTimestamp(); ts <= last {
		t.Errorf("after the clock stepped back: timestamp %d, previous %d", ts, last)
	}
	pub.take()

	// The interface gone; a failed deletion is tried again.
	pub.fail = errors.New("cache full")
	if err := tr.Links(nil); err == nil {
		t.Error("failed deletion: no error")
	}
	pub.fail = nil
	if err := tr.Links(nil); err != nil {
		t.Fatal(err)
	}
	if up, del = pub.take(); len(up) != 0 || !slices.Equal(del, []string{ifp}) {
		t.Errorf("interface gone: published %v, deleted %v; want %s deleted", up, del, ifp)
	}
}

func established() bgp.NeighborState {
	return bgp.NeighborState{Address: netip.MustParseAddr("10.0.0.0"), PeerAS: 65000, State: bgp.StateEstablished,
		EstablishedSince: t0, EstablishedTransitions: 2, LastEstablished: t0,
		PrefixesReceived:   map[bgp.Family]uint64{bgp.IPv4Unicast: 12, bgp.IPv6Unicast: 0},
		PrefixesAccepted:   map[bgp.Family]uint64{bgp.IPv4Unicast: 10, bgp.IPv6Unicast: 0},
		NegotiatedFamilies: []bgp.Family{bgp.IPv4Unicast},
		Messages:           bgp.MessageCounts{UpdatesReceived: 7, UpdatesSent: 3, NotificationsReceived: 1}}
}

// TestNeighborJSON: a neighbor's state in JSON_IETF.
func TestNeighborJSON(t *testing.T) {
	got := rfc7951(t, Neighbor(established()))
	want := compact(`{
	  "openconfig-network-instance:neighbor-address": "10.0.0.0",
	  "openconfig-network-instance:state": {"neighbor-address": "10.0.0.0", "peer-as": 65000,
	    "session-state": "ESTABLISHED", "established-transitions": "2", "last-established": "T0",
	    "messages": {"received": {"UPDATE": "7", "NOTIFICATION": "1"}, "sent": {"UPDATE": "3", "NOTIFICATION": "0"}}},
	  "openconfig-network-instance:afi-safis": {"afi-safi": [
	    {"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST", "state": {"afi-safi-name": "openconfig-bgp-types:IPV4_UNICAST",
	      "active": true, "prefixes": {"received-pre-policy": 12, "received": 10, "installed": 10}}},
	    {"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST", "state": {"afi-safi-name": "openconfig-bgp-types:IPV6_UNICAST",
	      "active": false, "prefixes": {"received-pre-policy": 0, "received": 0, "installed": 0}}}]}
	}`)
	if got != want {
		t.Errorf("neighbor state\n got %s\nwant %s", got, want)
	}
}

// TestTreeNeighbors: a session going down publishes its new state (and
// only what changed); a neighbor removed from the config is deleted.
func TestTreeNeighbors(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub).WithClock(func() time.Time { return t0 })
	n := established()
	if err := tr.Neighbors([]bgp.NeighborState{n}); err != nil {
		t.Fatal(err)
	}
	const np = "network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/neighbors/neighbor[neighbor-address=10.0.0.0]"
	if up, _ := pub.take(); up[np+"/state/session-state"] != "ESTABLISHED" || up[np+"/state/peer-as"] != "65000" {
		t.Errorf("established neighbor published %v", up)
	}
	n.State, n.EstablishedSince, n.NegotiatedFamilies = bgp.StateActive, time.Time{}, nil
	if err := tr.Neighbors([]bgp.NeighborState{n}); err != nil {
		t.Fatal(err)
	}
	up, del := pub.take()
	want := map[string]string{np + "/state/session-state": "ACTIVE",
		np + "/afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/state/active": "false"}
	if fmt.Sprint(up) != fmt.Sprint(want) || len(del) != 0 {
		t.Errorf("session down published %v, deleted %v; want %v", up, del, want)
	}
	n.Removed = true
	if err := tr.Neighbors([]bgp.NeighborState{n}); err != nil {
		t.Fatal(err)
	}
	if up, del = pub.take(); len(up) != 0 || !slices.Equal(del, []string{np}) {
		t.Errorf("removed neighbor: published %v, deleted %v", up, del)
	}
	if err := tr.BGPGlobal(65001, netip.MustParseAddr("10.255.0.1")); err != nil {
		t.Fatal(err)
	}
	const gp = "network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/global/state/"
	if up, _ = pub.take(); up[gp+"as"] != "65001" || up[gp+"router-id"] != "10.255.0.1" {
		t.Errorf("global state published %v", up)
	}
}

// TestTreeEndpoints: endpoints under /switchd/endpoints, a VM keyed by
// its name, a container by its endpoint ID; a removed one is deleted.
func TestTreeEndpoints(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub)
	c := host.Endpoint{ID: "c1/eth0", Kind: endpointapi.KindContainer, Name: "c1", HostIface: "sd-c1",
		IPv4: netip.MustParseAddr("10.10.1.5"), IPv6: netip.MustParseAddr("fd10::5"), MAC: "02:00:00:00:00:05",
		Labels: map[string]string{"role": "web"}}
	vm := host.Endpoint{ID: "vm:vm1", Kind: endpointapi.KindVM, Name: "vm1", HostIface: "tap-vm1",
		IPv4: netip.MustParseAddr("10.10.1.6")}
	got := rfc7951(t, Endpoint(c))
	want := compact(`{"switchd:name": "c1/eth0", "switchd:state": {"name": "c1/eth0", "kind": "CONTAINER",
	  "interface": "sd-c1", "ipv4-address": "10.10.1.5", "ipv6-address": "fd10::5", "mac": "02:00:00:00:00:05"},
	  "switchd:labels": {"label": [{"key": "role", "state": {"key": "role", "value": "web"}}]}}`)
	if got != want {
		t.Errorf("endpoint state\n got %s\nwant %s", got, want)
	}
	if err := tr.Endpoints([]host.EndpointEvent{{Type: host.EndpointAdded, Endpoint: c}, {Type: host.EndpointAdded, Endpoint: vm}}); err != nil {
		t.Fatal(err)
	}
	up, _ := pub.take()
	if up["switchd/endpoints/endpoint[name=vm1]/state/interface"] != "tap-vm1" ||
		up["switchd/endpoints/endpoint[name=c1/eth0]/labels/label[key=role]/state/value"] != "web" {
		t.Errorf("endpoints published %v", up)
	}
	if err := tr.Endpoints([]host.EndpointEvent{{Type: host.EndpointRemoved, Endpoint: c}}); err != nil {
		t.Fatal(err)
	}
	if _, del := pub.take(); !slices.Equal(del, []string{"switchd/endpoints/endpoint[name=c1/eth0]"}) {
		t.Errorf("endpoint removed: deleted %v", del)
	}
}

// TestTreeACL: ACL entry counters under /acl (config.ACLState), gone
// when the ACLs are.
func TestTreeACL(t *testing.T) {
	pub := &fakePublisher{}
	tr := New(pub)
	cs := []policy.ACLEntryCounter{{Set: policy.ACLSetKey{Name: "edge", Type: policy.ACLIPv4}, Seq: 10, Packets: 3, Octets: 180}}
	if err := tr.ACL(cs); err != nil {
		t.Fatal(err)
	}
	const ep = "acl/acl-sets/acl-set[name=edge][type=ACL_IPV4]/acl-entries/acl-entry[sequence-id=10]/state/"
	if up, _ := pub.take(); up[ep+"matched-packets"] != "3" || up[ep+"matched-octets"] != "180" {
		t.Errorf("ACL counters published %v", up)
	}
	if err := tr.ACL(nil); err != nil {
		t.Fatal(err)
	}
	if _, del := pub.take(); !slices.Equal(del, []string{"acl"}) {
		t.Errorf("ACLs gone: deleted %v", del)
	}
	if err := tr.ACL(nil); err != nil {
		t.Fatal(err)
	}
	if up, del := pub.take(); len(up)+len(del) != 0 {
		t.Errorf("still no ACLs: published %v, deleted %v", up, del)
	}
}

// TestSystemSample reads a fake /proc twice: memory, boot time, the
// process, and CPU utilisation from the difference; the rendering
// validates and carries them.
func TestSystemSample(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/sys/kernel/hostname", "leaf1\n")
	write("proc/meminfo", "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\n")
	write("proc/42/cmdline", "switchd\x00run\x00")
	stat := func(user, idle, procTicks uint64) {
		write("proc/stat", fmt.Sprintf("cpu  %d 0 100 %d 0 0 0 0 0 0\ncpu0 %d 0 100 %d 0 0 0 0 0 0\nbtime 1700000000\n", user, idle, user, idle))
		write("proc/42/stat", fmt.Sprintf("42 (switchd (x)) S 1 42 42 0 -1 4194560 1 0 0 0 %d 0 0 0 20 0 9 0 500 100000 25 18446744073709551615\n", procTicks))
	}
	s := NewSystemSampler(root, 42)
	stat(100, 800, 10)
	first, err := s.Sample(t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.CPUs) != 0 || first.Hostname != "leaf1" || first.MemTotal != 1000*1024 || first.Process.Name != "switchd (x)" ||
		first.Process.RSS != 25*uint64(os.Getpagesize()) || !first.Process.StartTime.Equal(time.Unix(1700000005, 0)) {
		t.Errorf("first sample %+v", first)
	}
	// 10 s later: 200 busy ticks of 900 (22 %), switchd used 1 s of one
	// CPU (10 %).
	stat(300, 1500, 110)
	second, err := s.Sample(t0.Add(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(second.CPUs) != 2 || second.CPUs[0].Index != -1 || second.CPUs[0].Total != 22 || second.CPUs[0].User != 22 ||
		second.CPUs[0].Idle != 77 || second.Process.CPUPercent != 10 {
		t.Errorf("second sample CPUs %+v, process %+v", second.CPUs, second.Process)
	}
	o := System(second)
	rfc7951(t, o)
	if *o.Memory.Used != 400*1024 || *o.Hostname != "leaf1" || *o.BootTime != uint64(time.Unix(1700000000, 0).UnixNano()) ||
		*o.Process[42].CpuUtilization != 10 || o.Cpu[oc.Cpu_Index_Enum_ALL].Total.GetInstant() != 22 {
		t.Errorf("system state: used %d, hostname %s, boot %d, process %+v", *o.Memory.Used, *o.Hostname, *o.BootTime, o.Process[42])
	}
}

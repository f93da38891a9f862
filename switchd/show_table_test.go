package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
)

// TestTableWrite: columns two spaces apart and as wide as their widest
// cell, numbers (with dashes) right-aligned, text left, a missing value
// "-", a list comma-separated, the last column unpadded.
func TestTableWrite(t *testing.T) {
	tb := newTable("Name", "Count", "Tags", "Note")
	tb.add("a", uint64(7), []string{"x", "y"}, "first")
	tb.add("longer-name", nil, nil, nil)
	tb.add(ygot.String("c"), ygot.Uint32(123456), []string{}, (*string)(nil))
	checkTable(t, tb, ""+
		"Name          Count  Tags  Note\n"+
		"a                 7  x,y   first\n"+
		"longer-name       -  -     -\n"+
		"c            123456  -     -\n")
}

// checkTable compares tb's text with want.
func checkTable(t *testing.T, tb *table, want string) {
	t.Helper()
	var b bytes.Buffer
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestTableWriteJSON: one object per row, keys the columns in lower
// case with dashes, values typed, missing ones null.
func TestTableWriteJSON(t *testing.T) {
	tb := newTable("Name", "In pkts", "Tags")
	tb.add("a", uint64(7), []string{"x"})
	tb.add("b", nil, nil)
	var b bytes.Buffer
	if err := tb.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := "[\n" +
		`  {"name": "a", "in-pkts": 7, "tags": ["x"]},` + "\n" +
		`  {"name": "b", "in-pkts": null, "tags": null}` + "\n]\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	newTable("X").writeJSON(&b)
	if b.String() != "[]\n" {
		t.Errorf("empty table as JSON: %q", b.String())
	}
}

// TestRenderBGPSummary: FRR's columns from constructed state; an
// Established neighbor shows its accepted prefixes and uptime, others
// their state.
func TestRenderBGPSummary(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := &oc.NetworkInstance_Protocol_Bgp{}
	n := b.GetOrCreateNeighbor("10.0.0.9")
	n.PeerAs = ygot.Uint32(4200000001)
	n.SessionState = oc.Neighbor_SessionState_ESTABLISHED
	n.LastEstablished = ygot.Uint64(uint64(now.Add(-(3*24*time.Hour + 4*time.Hour + 5*time.Minute)).UnixNano()))
	n.GetOrCreateMessages().GetOrCreateReceived().UPDATE = ygot.Uint64(1500)
	n.GetOrCreateMessages().GetOrCreateSent().NOTIFICATION = ygot.Uint64(1)
	p := n.GetOrCreateAfiSafi(oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST).GetOrCreatePrefixes()
	p.Received, p.Sent = ygot.Uint32(100000), ygot.Uint32(3)
	p6 := n.GetOrCreateAfiSafi(oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST).GetOrCreatePrefixes()
	p6.Received, p6.Sent = ygot.Uint32(5), ygot.Uint32(4)
	m := b.GetOrCreateNeighbor("10.0.0.10")
	m.PeerAs = ygot.Uint32(65002)
	m.SessionState = oc.Neighbor_SessionState_IDLE
	m.LastEstablished = ygot.Uint64(1)
	b.GetOrCreateNeighbor("2001:db8::1").SessionState = oc.Neighbor_SessionState_OPENSENT

	checkTable(t, renderBGPSummary(b, now), ""+
		"Neighbor             AS  MsgRcvd  MsgSent  Up/Down   State/PfxRcd  PfxSnt\n"+
		"10.0.0.9     4200000001     1500        1  3d04h05m  100005             7\n"+
		"10.0.0.10         65002        0        0  -         Idle               -\n"+
		"2001:db8::1           -        0        0  never     OpenSent           -\n")
}

func TestFmtUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "00:00:00", 59*time.Minute + 59*time.Second: "00:59:59", 25 * time.Hour: "1d01h00m",
		(15*24 + 2) * time.Hour: "2w1d02h", -time.Second: "00:00:00",
	} {
		if got := fmtUptime(d); got != want {
			t.Errorf("fmtUptime(%v) = %s, want %s", d, got, want)
		}
	}
}

// TestRoutes decodes AFT leaves from constructed notifications (a
// prefix in the notification, identityrefs with their module, a group
// not yet published, IPv6) and renders them.
func TestRoutes(t *testing.T) {
	pre, err := ygot.StringToStructuredPath(aftPath)
	if err != nil {
		t.Fatal(err)
	}
	var ups []*gpb.Update
	leaf := func(p string, v *gpb.TypedValue) {
		gp, err := ygot.StringToStructuredPath(p)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, &gpb.Update{Path: gp, Val: v})
	}
	u := func(x uint64) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: x}} }
	s := func(x string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: x}} }
	leaf("/ipv4-unicast/ipv4-entry[prefix=0.0.0.0/0]/state/next-hop-group", u(5))
	leaf("/ipv4-unicast/ipv4-entry[prefix=0.0.0.0/0]/state/origin-protocol", s("openconfig-policy-types:BGP"))
	leaf("/ipv4-unicast/ipv4-entry[prefix=192.0.2.0/24]/state/origin-protocol", s("openconfig-policy-types:DIRECTLY_CONNECTED"))
	leaf("/ipv4-unicast/ipv4-entry[prefix=198.51.100.0/24]/state/next-hop-group", u(9)) // group 9 not published
	leaf("/ipv6-unicast/ipv6-entry[prefix=2001:db8::/32]/state/next-hop-group", u(5))
	leaf("/next-hop-groups/next-hop-group[id=5]/next-hops/next-hop[index=2]/state/weight", u(3))
	leaf("/next-hop-groups/next-hop-group[id=5]/next-hops/next-hop[index=1]/state/weight", u(1))
	leaf("/next-hops/next-hop[index=1]/state/ip-address", s("fe80::1"))
	leaf("/next-hops/next-hop[index=1]/interface-ref/state/interface", s("swp1"))
	leaf("/next-hops/next-hop[index=2]/interface-ref/state/interface", s("swp2"))
	a := newAFTs()
	a.add(&gpb.Notification{Prefix: pre, Update: ups})

	checkTable(t, routeTable(a.routes(routeQuery{})), ""+
		"Prefix           Origin              Next hop  Interface  Weight\n"+
		"0.0.0.0/0        bgp                 fe80::1   swp1            1\n"+
		"                                     -         swp2            3\n"+
		"192.0.2.0/24     directly_connected  -         -               -\n"+
		"198.51.100.0/24  -                   -         -               -\n"+
		"2001:db8::/32    -                   fe80::1   swp1            1\n"+
		"                                     -         swp2            3\n")
	for q, want := range map[string]string{"192.0.2.7": "192.0.2.0/24", "203.0.113.1": "0.0.0.0/0", "2001:db8::5": "2001:db8::/32",
		"192.0.2.9/24": "192.0.2.0/24", "10.0.0.0/8": "", "2001:db9::1": ""} {
		rq, err := parseRouteQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range a.routes(rq) {
			got = append(got, r.Prefix)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("route %s: %v, want %q", q, got, want)
		}
	}
	if _, err := parseRouteQuery("10.0.0.0/33"); err == nil {
		t.Errorf("a /33 parsed")
	}
}

// TestRenderInterfaces: ifindex order, enums in lower case, counters
// right-aligned, link-local addresses left out.
func TestRenderInterfaces(t *testing.T) {
	d := &oc.Device{}
	e := d.GetOrCreateInterface("eth10")
	e.Ifindex, e.Mtu = ygot.Uint32(3), ygot.Uint16(1500)
	e.AdminStatus, e.OperStatus = oc.Interface_AdminStatus_UP, oc.Interface_OperStatus_LOWER_LAYER_DOWN
	e.GetOrCreateSubinterface(0).GetOrCreateIpv6().GetOrCreateAddress("fe80::2").PrefixLength = ygot.Uint8(64)
	f := d.GetOrCreateInterface("eth2")
	f.Ifindex = ygot.Uint32(2)
	c := f.GetOrCreateCounters()
	c.InPkts, c.OutPkts, c.InErrors, c.OutErrors, c.InDiscards, c.OutDiscards = ygot.Uint64(10), ygot.Uint64(20), ygot.Uint64(0), ygot.Uint64(1), ygot.Uint64(2), ygot.Uint64(3)
	s := f.GetOrCreateSubinterface(0)
	s.GetOrCreateIpv4().GetOrCreateAddress("10.0.0.1").PrefixLength = ygot.Uint8(31)
	s.GetOrCreateIpv6().GetOrCreateAddress("2001:db8::1").PrefixLength = ygot.Uint8(127)
	checkTable(t, renderInterfaces(d), ""+
		"Interface  Admin  Oper               MTU  In pkts  Out pkts  In errors  Out errors  In drops  Out drops  Addresses\n"+
		"eth2       -      -                    -       10        20          0           1         2          3  10.0.0.1/31,2001:db8::1/127\n"+
		"eth10      up     lower_layer_down  1500        -         -          -           -         -          -  -\n")
}

func TestByteSize(t *testing.T) {
	for b, want := range map[byteSize]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 50 << 20: "50.0 MiB", 25325268992: "23.6 GiB", 1 << 62: "4.0 EiB"} {
		if got := b.String(); got != want {
			t.Errorf("byteSize(%d) = %s, want %s", uint64(b), got, want)
		}
	}
}

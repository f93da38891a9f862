package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/platform"
)

// ifEntry is one /interfaces entry in RFC 7951 JSON: config leaves and
// subinterface 0's addresses ("10.0.0.0/31", "fd00::1/64").
func ifEntry(name string, cfg map[string]any, addrs ...string) map[string]any {
	c := map[string]any{"name": name}
	for k, v := range cfg {
		c[k] = v
	}
	e := map[string]any{"name": name, "config": c}
	if len(addrs) == 0 {
		return e
	}
	fam := map[string][]any{}
	for _, a := range addrs {
		ip, plen, _ := strings.Cut(a, "/")
		f := "openconfig-if-ip:ipv4"
		if strings.Contains(ip, ":") {
			f = "openconfig-if-ip:ipv6"
		}
		ac := map[string]any{"ip": ip}
		if plen != "" {
			var n int
			json.Unmarshal([]byte(plen), &n)
			ac["prefix-length"] = n
		}
		fam[f] = append(fam[f], map[string]any{"ip": ip, "config": ac})
	}
	sub := map[string]any{"index": 0, "config": map[string]any{"index": 0}}
	for f, as := range fam {
		sub[f] = map[string]any{"addresses": map[string]any{"address": as}}
	}
	e["subinterfaces"] = map[string]any{"subinterface": []any{sub}}
	return e
}

func withInterfaces(m map[string]any, entries ...map[string]any) {
	l := make([]any, len(entries))
	for i, e := range entries {
		l[i] = e
	}
	m["openconfig-interfaces:interfaces"] = map[string]any{"interface": l}
}

// TestInterfacesTranslate: the leaves switchd applies become one
// platform.InterfaceConfig per interface, in name order, with leaves left
// out left nil (the kernel's value stays).
func TestInterfacesTranslate(t *testing.T) {
	m := leafDoc(t)
	withInterfaces(m,
		ifEntry("swp2", map[string]any{"mtu": 9216, "enabled": true, "description": "to spine1",
			"type": "iana-if-type:ethernetCsmacd"}, "10.0.0.1/31", "fd00::1/127", "fe80::1/64"),
		ifEntry("lo", nil, "10.255.0.1/32", "fd00:255::1/128"),
		ifEntry("swp1", map[string]any{"enabled": false}),
	)
	in, err := parseDoc(t, m)
	if err != nil {
		t.Fatal(err)
	}
	pf := netip.MustParsePrefix
	yes, no, desc := true, false, "to spine1"
	want := []platform.InterfaceConfig{
		{Name: "lo", Addrs: []netip.Prefix{pf("10.255.0.1/32"), pf("fd00:255::1/128")}},
		{Name: "swp1", Enabled: &no},
		{Name: "swp2", Enabled: &yes, MTU: 9216, Description: &desc, Addrs: []netip.Prefix{pf("10.0.0.1/31"), pf("fd00::1/127"), pf("fe80::1/64")}},
	}
	if d := cmp.Diff(want, in.Interfaces, cmpOpts...); d != "" {
		t.Errorf("Interfaces (-want +got):\n%s", d)
	}
}

// TestInterfacesRejects: each bad /interfaces input is refused with its
// OpenConfig path, and the config as a whole with it (nothing applied).
func TestInterfacesRejects(t *testing.T) {
	const sw = "/interfaces/interface[name=swp1]"
	const a4 = sw + "/subinterfaces/subinterface[index=0]/ipv4/addresses/address"
	const a6 = sw + "/subinterfaces/subinterface[index=0]/ipv6/addresses/address"
	for _, tc := range []struct {
		name    string
		entries []map[string]any
		path    string
		reason  string
	}{
		{"MTU too small", []map[string]any{ifEntry("swp1", map[string]any{"mtu": 67})},
			sw + "/config/mtu", "MTU 67 is below 68"},
		{"MTU too small for IPv6", []map[string]any{ifEntry("swp1", map[string]any{"mtu": 1000}, "fd00::1/64")},
			sw + "/config/mtu", "below 1280"},
		{"MTU above the model's range", []map[string]any{ifEntry("swp1", map[string]any{"mtu": 70000})},
			sw + "/config/mtu", ""},
		{"IPv4 prefix length too long", []map[string]any{ifEntry("swp1", nil, "10.0.0.1/33")},
			a4 + "[ip=10.0.0.1]/config/prefix-length", ""},
		{"IPv6 prefix length 0", []map[string]any{ifEntry("swp1", nil, "fd00::1/0")},
			a6 + "[ip=fd00::1]/config/prefix-length", "prefix length 0"},
		{"no prefix length", []map[string]any{ifEntry("swp1", nil, "10.0.0.1")},
			a4 + "[ip=10.0.0.1]/config/prefix-length", "needs its prefix-length"},
		{"multicast address", []map[string]any{ifEntry("swp1", nil, "224.0.0.5/24")},
			a4 + "[ip=224.0.0.5]/config/ip", "cannot be an interface's address"},
		{"IPv4-mapped IPv6 address", []map[string]any{ifEntry("swp1", nil, "::ffff:10.0.0.1/120")},
			a6 + "[ip=::ffff:10.0.0.1]/config/ip", "not a valid ipv6-address"},
		{"one address on two interfaces", []map[string]any{ifEntry("swp0", nil, "10.0.0.1/31"), ifEntry("swp1", nil, "10.0.0.1/24")},
			a4 + "[ip=10.0.0.1]/config/ip", "configured on interface swp0 too"},
		{"name too long", []map[string]any{ifEntry("swp1234567890123", nil)},
			"/interfaces/interface[name=swp1234567890123]/config/name", "not a kernel interface name"},
		{"subinterface other than 0", []map[string]any{func() map[string]any {
			e := ifEntry("swp1", nil)
			e["subinterfaces"] = map[string]any{"subinterface": []any{map[string]any{"index": 100, "config": map[string]any{"index": 100}}}}
			return e
		}()}, sw + "/subinterfaces/subinterface[index=100]", "subinterface 0 only"},
		{"VLAN", []map[string]any{ifEntry("swp1", map[string]any{"openconfig-vlan:tpid": "openconfig-vlan-types:TPID_0X8100"})},
			sw + "/config/tpid", "VLANs are not supported"},
		{"an ethernet leaf", []map[string]any{func() map[string]any {
			e := ifEntry("swp1", nil)
			e["openconfig-if-ethernet:ethernet"] = map[string]any{"config": map[string]any{"auto-negotiate": true}}
			return e
		}()}, sw + "/ethernet", "switchd applies an interface's enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := leafDoc(t)
			withInterfaces(m, tc.entries...)
			in, err := parseDoc(t, m)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", in.Interfaces)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			for _, e := range es {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no error at\n  %s\ncontaining %q; got:\n%v", tc.path, tc.reason, err)
		})
	}
}

// TestInterfacesSet: a gNMI Set reaches /interfaces through the same
// validator: an address added by path is in the intent, an MTU below 68
// is refused with its path and the running document is left as it was.
func TestInterfacesSet(t *testing.T) {
	m := leafDoc(t)
	withInterfaces(m, ifEntry("swp1", map[string]any{"mtu": 9000}, "10.0.0.0/31"))
	running, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const sw = "/interfaces/interface[name=swp1]"
	add := &gpb.SetRequest{Update: []*gpb.Update{{
		Path: gp(t, sw+"/subinterfaces/subinterface[index=0]/ipv6/addresses/address[ip=fd00::]/config"),
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"ip": "fd00::", "prefix-length": 127}`)}}}}}
	in, _, err := Set(running, add)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/31"), netip.MustParsePrefix("fd00::/127")}
	if len(in.Interfaces) != 1 || !slices.Equal(in.Interfaces[0].Addrs, want) || in.Interfaces[0].MTU != 9000 {
		t.Errorf("after the Set: %+v, want swp1 with MTU 9000 and %v", in.Interfaces, want)
	}
	bad := &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, sw+"/config/mtu"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 10}}}}}
	orig := bytes.Clone(running)
	_, _, err = Set(running, bad)
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 || es[0].Path != sw+"/config/mtu" {
		t.Errorf("Set of MTU 10: %v, want an error at %s/config/mtu", err, sw)
	}
	if !bytes.Equal(running, orig) {
		t.Errorf("a refused Set changed the running document")
	}
}

package config

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestStaticPrefixes: /switchd/ipam/config/static-prefix reaches the
// Workloads intent; a VM's fixed address must lie in a pool or a static
// prefix, and a static prefix must be masked and in no pool, each refused
// with the path of the offending leaf.
func TestStaticPrefixes(t *testing.T) {
	const vmCfg = "/switchd/endpoints/endpoint[name=vm1]/config"
	const static = "/switchd/ipam/config/static-prefix"
	doc := func(t *testing.T, statics []string, vmAddrs map[string]string) []byte {
		m := hostDoc(t)
		ipam := at(t, m, "switchd:switchd", "ipam")
		if statics != nil {
			ipam["config"] = map[string]any{"static-prefix": statics}
		}
		for k, v := range vmAddrs {
			at(t, m, "switchd:switchd", "endpoints", "endpoint", 0, "config")[k] = v
		}
		data, _ := json.Marshal(m)
		return data
	}

	in, err := Parse(doc(t, []string{"198.51.100.0/28", "2001:db8:7::/64"},
		map[string]string{"ipv4-address": "198.51.100.7", "ipv6-address": "fd00:10:1::9"}), "host.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/28"), netip.MustParsePrefix("2001:db8:7::/64")}
	if !slices.Equal(in.Workloads.StaticPrefixes, want) || len(in.Workloads.VMs) != 1 ||
		in.Workloads.VMs[0].IPv4 != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("workloads %+v, want static prefixes %v and vm1 at 198.51.100.7", in.Workloads, want)
	}

	for _, tc := range []struct {
		name     string
		statics  []string
		vm       map[string]string
		path, in string
	}{
		{"VM IPv4 in no pool", nil, map[string]string{"ipv4-address": "192.0.2.7"}, vmCfg + "/ipv4-address", "address 192.0.2.7 is in no IPAM pool and no static prefix"},
		{"VM IPv6 beside the static prefix", []string{"2001:db8:7::/64"}, map[string]string{"ipv6-address": "2001:db8:8::1"}, vmCfg + "/ipv6-address", "2001:db8:8::1 is in no IPAM pool"},
		{"static prefix with host bits", []string{"198.51.100.1/28"}, nil, static, "host bits set"},
		{"static prefix overlapping a pool", []string{"10.10.0.0/16"}, nil, static, "overlaps pool 10.10.1.0/24"},
	} {
		_, err := Parse(doc(t, tc.statics, tc.vm), "host.json")
		var es Errors
		if !errors.As(err, &es) || !slices.ContainsFunc(es, func(e Error) bool { return e.Path == tc.path && strings.Contains(e.Reason, tc.in) }) {
			t.Errorf("%s: got %v, want an error at %s containing %q", tc.name, err, tc.path, tc.in)
		}
	}
}

package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// obj is a JSON object of the OpenConfig tree; encoding/json sorts its keys,
// so the generated config is deterministic.
type obj = map[string]any

// RFC 7951 identity values carry the module that defines them.
const (
	idDefaultInstance = "openconfig-network-instance-types:DEFAULT_INSTANCE"
	idBGP             = "openconfig-policy-types:BGP"
	idLocalAggregate  = "openconfig-policy-types:LOCAL_AGGREGATE"
	idIPv4            = "openconfig-types:IPV4"
	idIPv6            = "openconfig-types:IPV6"
	idIPv4Unicast     = "openconfig-bgp-types:IPV4_UNICAST"
	idIPv6Unicast     = "openconfig-bgp-types:IPV6_UNICAST"
	idLoopback        = "iana-if-type:softwareLoopback"
	idEthernet        = "iana-if-type:ethernetCsmacd"
)

// MaxPaths is the eBGP multipath limit in generated configs.
const MaxPaths = 64

// NodeConfig returns the switchd config of a node: the OpenConfig tree in
// RFC 7951 JSON. It works for every node (a BIRD node's config is what
// switchd would run there).
func (f *Fabric) NodeConfig(name string) ([]byte, error) {
	n, err := f.node(name)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(f.switchdTree(n), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config of %s: %w", name, err)
	}
	return append(b, '\n'), nil
}

func (f *Fabric) switchdTree(n *NodeInfo) obj {
	ifaces := []any{ocInterface("lo", idLoopback,
		netip.PrefixFrom(n.Loopback4, 32), netip.PrefixFrom(n.Loopback6, 128), "loopback")}
	for _, i := range n.Interfaces {
		ifaces = append(ifaces, ocInterface(i.Name, idEthernet, i.Addr4, i.Addr6,
			fmt.Sprintf("link to %s %s", i.Peer, i.PeerInterface)))
	}

	tm := f.Topology.Timers
	var neighbors []any
	for _, i := range n.Interfaces {
		for _, s := range []struct {
			addr netip.Addr
			afi  string
		}{{i.Peer4, idIPv4Unicast}, {i.Peer6, idIPv6Unicast}} {
			neighbors = append(neighbors, obj{
				"neighbor-address": s.addr.String(),
				"config": obj{
					"neighbor-address": s.addr.String(),
					"peer-as":          i.PeerASN,
					"description":      i.Peer,
				},
				"timers": obj{"config": obj{
					"hold-time":          tm.Hold,
					"keepalive-interval": tm.Keepalive,
					"connect-retry":      tm.ConnectRetry,
				}},
				"afi-safis": obj{"afi-safi": []any{afiSafi(s.afi)}},
			})
		}
	}

	var tables, connections []any
	for _, af := range []string{idIPv4, idIPv6} {
		for _, p := range []string{idLocalAggregate, idBGP} {
			tables = append(tables, obj{
				"protocol": p, "address-family": af,
				"config": obj{"protocol": p, "address-family": af},
			})
		}
		c := obj{"src-protocol": idLocalAggregate, "dst-protocol": idBGP, "address-family": af}
		connections = append(connections, obj{
			"src-protocol": idLocalAggregate, "dst-protocol": idBGP, "address-family": af, "config": c,
		})
	}

	bgp := obj{
		"global": obj{
			"config": obj{"as": n.ASN, "router-id": n.RouterID.String()},
			"use-multiple-paths": obj{
				"config": obj{"enabled": true},
				// A leaf's paths through different spines are ECMP.
				"ebgp": obj{"config": obj{"allow-multiple-as": true, "maximum-paths": MaxPaths}},
			},
			"afi-safis": obj{"afi-safi": []any{afiSafi(idIPv4Unicast), afiSafi(idIPv6Unicast)}},
		},
	}
	if len(neighbors) > 0 {
		bgp["neighbors"] = obj{"neighbor": neighbors}
	}
	aggregates := []any{}
	for _, p := range []netip.Prefix{netip.PrefixFrom(n.Loopback4, 32), netip.PrefixFrom(n.Loopback6, 128)} {
		aggregates = append(aggregates, obj{"prefix": p.String(), "config": obj{"prefix": p.String()}})
	}
	protocols := []any{
		obj{
			"identifier": idLocalAggregate, "name": "DEFAULT",
			"config":           obj{"identifier": idLocalAggregate, "name": "DEFAULT"},
			"local-aggregates": obj{"aggregate": aggregates},
		},
		obj{
			"identifier": idBGP, "name": "BGP",
			"config": obj{"identifier": idBGP, "name": "BGP"},
			"bgp":    bgp,
		},
	}
	return obj{
		"openconfig-interfaces:interfaces": obj{"interface": ifaces},
		"openconfig-network-instance:network-instances": obj{"network-instance": []any{obj{
			"name":              "DEFAULT",
			"config":            obj{"name": "DEFAULT", "type": idDefaultInstance},
			"tables":            obj{"table": tables},
			"table-connections": obj{"table-connection": connections},
			"protocols":         obj{"protocol": protocols},
		}}},
	}
}

func ocInterface(name, typ string, a4, a6 netip.Prefix, descr string) obj {
	addr := func(p netip.Prefix) obj {
		return obj{"addresses": obj{"address": []any{obj{
			"ip":     p.Addr().String(),
			"config": obj{"ip": p.Addr().String(), "prefix-length": p.Bits()},
		}}}}
	}
	return obj{
		"name":   name,
		"config": obj{"name": name, "type": typ, "enabled": true, "description": descr},
		"subinterfaces": obj{"subinterface": []any{obj{
			"index":                 0,
			"config":                obj{"index": 0, "enabled": true},
			"openconfig-if-ip:ipv4": addr(a4),
			"openconfig-if-ip:ipv6": addr(a6),
		}}},
	}
}

func afiSafi(name string) obj {
	return obj{"afi-safi-name": name, "config": obj{"afi-safi-name": name, "enabled": true}}
}

// BirdConfig returns the bird.conf of a node: its loopbacks originated from
// lo, one BGP protocol per link and address family, everything learned
// installed into the kernel (as protocol "bird").
func (f *Fabric) BirdConfig(name string) ([]byte, error) {
	n, err := f.node(name)
	if err != nil {
		return nil, err
	}
	tm := f.Topology.Timers
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by switchd sim for node %s of fabric %s.\n", n.Name, f.Prefix)
	// The simulator runs BIRD in the foreground with stderr in its log.
	b.WriteString("log stderr all;\n")
	fmt.Fprintf(&b, "router id %s;\n\n", n.RouterID)
	b.WriteString("protocol device { scan time 10; }\n\n")
	b.WriteString("# The loopbacks, to originate them.\n")
	b.WriteString("protocol direct { ipv4; ipv6; interface \"lo\"; }\n\n")
	b.WriteString("# Learned routes go into the kernel; merge paths makes ECMP routes.\n")
	for _, v := range []string{"4", "6"} {
		fmt.Fprintf(&b, "protocol kernel kernel%s {\n\tipv%s { import none; export where source = RTS_BGP; };\n\tlearn off;\n\tmerge paths on;\n}\n", v, v)
	}
	for _, i := range n.Interfaces {
		for _, s := range []struct {
			v         string
			local     netip.Addr
			peer      netip.Addr
			loopback  netip.Prefix
			birdIdent string
		}{
			{"4", i.Addr4.Addr(), i.Peer4, netip.PrefixFrom(n.Loopback4, 32), birdProtocol(i, "4")},
			{"6", i.Addr6.Addr(), i.Peer6, netip.PrefixFrom(n.Loopback6, 128), birdProtocol(i, "6")},
		} {
			fmt.Fprintf(&b, "\nprotocol bgp %s {\n", s.birdIdent)
			fmt.Fprintf(&b, "\tdescription \"%s via %s\";\n", i.Peer, i.Name)
			fmt.Fprintf(&b, "\tlocal %s as %d;\n", s.local, n.ASN)
			fmt.Fprintf(&b, "\tneighbor %s as %d;\n", s.peer, i.PeerASN)
			fmt.Fprintf(&b, "\thold time %d;\n\tkeepalive time %d;\n", tm.Hold, tm.Keepalive)
			// BIRD waits 5 s before its first connect and 120 s after a
			// refused one by default; a simulated fabric whose daemons
			// start in any order wants both short.
			fmt.Fprintf(&b, "\tconnect delay time 1;\n\tconnect retry time %d;\n\terror wait time 1, 10;\n", tm.ConnectRetry)
			fmt.Fprintf(&b, "\tipv%s {\n\t\timport all;\n\t\texport where source = RTS_BGP || (source = RTS_DEVICE && net = %s);\n\t};\n}\n", s.v, s.loopback)
		}
	}
	return b.Bytes(), nil
}

// birdProtocol names the BGP protocol of an interface and family: the
// link index keeps it unique, the peer name makes birdc readable.
func birdProtocol(i *Interface, v string) string {
	return fmt.Sprintf("%s_l%d_v%s", strings.ReplaceAll(i.Peer, "-", "_"), i.Link, v)
}

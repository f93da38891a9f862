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
)

// MaxPaths is the eBGP multipath limit in generated configs.
const MaxPaths = 64

// Graceful restart timers of generated configs (helper-only on spines), in seconds: peers keep a
// restarting node's routes for RestartTime, long enough for a test to
// restart a daemon and short enough that a dead one is noticed; a node
// back without End-of-RIB loses its stale routes after StaleRoutesTime.
const (
	RestartTime     = 30
	StaleRoutesTime = 60
)

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

// switchdTree is a node's config; its /interfaces carry the node's
// addresses (Addresses), which switchd applies to the links the simulator
// made.
func (f *Fabric) switchdTree(n *NodeInfo) obj {
	tm := f.Topology.Timers
	var neighbors, prefixSets, policies []any
	var peerGroups, ifNeighbors []any // unnumbered links' (unnumbered.go)
	if n.Role == Host {
		// What a host announces: its loopbacks and workload blocks.
		set, pol := ownPrefixesPolicy(n, "own-prefixes")
		prefixSets = append(prefixSets, set)
		policies = append(policies, pol)
	}
	for _, i := range n.Interfaces {
		peer := f.byName[i.Peer]
		// One passive end per session: GoBGP ends that both connect can
		// miss each other for tens of seconds after a drop. Leaves
		// connect (so a restarted leaf reconnects at once); spines and
		// hosts wait for them.
		passive := peer.Role == Leaf && n.Role != Leaf
		// Policies are stated explicitly: with none, switchd rejects
		// every route both ways (REJECT_ROUTE, RFC 8212). Spines and
		// leaves pass the fabric's routes on; a leaf takes from a host
		// only the host's own prefixes; a host takes everything and
		// announces only its own.
		applyPolicy := obj{"config": obj{
			"default-import-policy": "ACCEPT_ROUTE",
			"default-export-policy": "ACCEPT_ROUTE",
		}}
		switch {
		case n.Role == Leaf && peer.Role == Host:
			set, pol := ownPrefixesPolicy(peer, "from-"+peer.Name)
			prefixSets = append(prefixSets, set)
			policies = append(policies, pol)
			applyPolicy = obj{"config": obj{
				"import-policy":         []any{pol["name"]},
				"default-import-policy": "REJECT_ROUTE",
				"default-export-policy": "ACCEPT_ROUTE",
			}}
		case n.Role == Host:
			applyPolicy = obj{"config": obj{
				"default-import-policy": "ACCEPT_ROUTE",
				"export-policy":         []any{"own-prefixes"},
				"default-export-policy": "REJECT_ROUTE",
			}}
		}
		if i.Unnumbered {
			g, nb := interfaceNeighbor(i, tm, passive, applyPolicy)
			if b := f.enableBFD(n, peer, i); b != nil {
				g["enable-bfd"] = b
			}
			peerGroups, ifNeighbors = append(peerGroups, g), append(ifNeighbors, nb)
			continue
		}
		for _, s := range []struct {
			addr netip.Addr
			afi  string
		}{{i.Peer4, idIPv4Unicast}, {i.Peer6, idIPv6Unicast}} {
			nb := obj{
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
			}
			if passive {
				nb["transport"] = obj{"config": obj{"passive-mode": true}}
			}
			if n.Role == Leaf && peer.Role == External {
				// Group membership stays inside the fabric.
				nb["config"].(obj)["switchd:membership-routes"] = "filter"
			}
			nb["apply-policy"] = applyPolicy
			if b := f.enableBFD(n, peer, i); b != nil {
				nb["enable-bfd"] = b
			}
			neighbors = append(neighbors, nb)
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
			// Spines are helpers only: a spine whose daemon dies is
			// routed around by ECMP through the other spines after the
			// hold time, instead of its peers keeping its routes for the
			// restart time. Leaves and hosts, which nothing routes
			// around, restart gracefully.
			"graceful-restart": obj{"config": obj{
				"enabled": true, "restart-time": RestartTime, "stale-routes-time": StaleRoutesTime,
				"helper-only": n.Role == Spine,
			}},
		},
	}
	if len(neighbors) > 0 {
		bgp["neighbors"] = obj{"neighbor": neighbors}
	}
	if len(ifNeighbors) > 0 {
		bgp["peer-groups"] = obj{"peer-group": peerGroups}
		bgp["switchd:interface-neighbors"] = obj{"interface-neighbor": ifNeighbors}
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
	tree := obj{
		"openconfig-network-instance:network-instances": obj{"network-instance": []any{obj{
			"name":              "DEFAULT",
			"config":            obj{"name": "DEFAULT", "type": idDefaultInstance},
			"tables":            obj{"table": tables},
			"table-connections": obj{"table-connection": connections},
			"protocols":         obj{"protocol": protocols},
		}}},
	}
	if len(policies) > 0 {
		tree["openconfig-routing-policy:routing-policy"] = obj{
			"defined-sets":       obj{"prefix-sets": obj{"prefix-set": prefixSets}},
			"policy-definitions": obj{"policy-definition": policies},
		}
	}
	if n.Role == Host {
		var pools []any
		for _, p := range []struct {
			pfx   netip.Prefix
			block int
		}{{n.Workload4, WorkloadBlock4}, {n.Workload6, WorkloadBlock6}} {
			pools = append(pools, obj{"prefix": p.pfx.String(), "config": obj{"prefix": p.pfx.String(), "block-length": p.block}})
		}
		tree["switchd:switchd"] = obj{"ipam": obj{"pools": obj{"pool": pools}}}
		if f.Topology.PolicyTree != nil {
			mergePolicy(tree, f.Topology.PolicyTree)
		}
	}
	tree["openconfig-interfaces:interfaces"] = f.interfacesTree(n)
	addMetrics(tree, n)
	return tree
}

// ownPrefixesPolicy accepts a host's own prefixes: its loopbacks and
// anything inside its workload ranges (blocks and single addresses),
// nothing else. A leaf imports with it from the host, so one host cannot
// take another's addresses; the host exports with it, so it is no transit.
func ownPrefixesPolicy(h *NodeInfo, pname string) (prefixSet, policy obj) {
	name := "host-" + h.Name
	entry := func(p netip.Prefix, r string) obj {
		return obj{"ip-prefix": p.String(), "masklength-range": r,
			"config": obj{"ip-prefix": p.String(), "masklength-range": r}}
	}
	prefixSet = obj{
		"name": name, "config": obj{"name": name, "mode": "MIXED"},
		"prefixes": obj{"prefix": []any{
			entry(netip.PrefixFrom(h.Loopback4, 32), "exact"),
			entry(netip.PrefixFrom(h.Loopback6, 128), "exact"),
			entry(h.Workload4, fmt.Sprintf("%d..32", h.Workload4.Bits())),
			entry(h.Workload6, fmt.Sprintf("%d..128", h.Workload6.Bits())),
		}},
	}
	policy = obj{
		"name": pname, "config": obj{"name": pname},
		"statements": obj{"statement": []any{obj{
			"name": "own-prefixes", "config": obj{"name": "own-prefixes"},
			"conditions": obj{"match-prefix-set": obj{"config": obj{"prefix-set": name, "match-set-options": "ANY"}}},
			"actions":    obj{"config": obj{"policy-result": "ACCEPT_ROUTE"}},
		}}},
	}
	return prefixSet, policy
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
	b.WriteString("# Graceful restart: after bird -R the kernel is synced only once BGP has recovered.\n")
	for _, v := range []string{"4", "6"} {
		fmt.Fprintf(&b, "protocol kernel kernel%s {\n\tipv%s { import none; export where source = RTS_BGP; };\n\tlearn off;\n\tmerge paths on;\n\tgraceful restart on;\n}\n", v, v)
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
			// Helper for its peers, and restarter (RestartGracefully).
			b.WriteString("\tgraceful restart on;\n")
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

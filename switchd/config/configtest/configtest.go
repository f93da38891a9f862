// Package configtest writes switchd config files for tests and
// benchmarks: the OpenConfig tree (RFC 7951 JSON) of a BGP speaker in the
// default network instance, from a few fields, so each test states what it
// configures and not the tree's boilerplate.
package configtest

import (
	"encoding/json"
	"fmt"
)

// Family is an OpenConfig afi-safi name.
type Family string

const (
	IPv4Unicast Family = "IPV4_UNICAST"
	IPv6Unicast Family = "IPV6_UNICAST"
)

// Policy is an apply-policy default.
type Policy string

const (
	Accept Policy = "ACCEPT_ROUTE"
	Reject Policy = "REJECT_ROUTE"
)

// BGP is a speaker's config.
type BGP struct {
	ASN      uint32
	RouterID string
	// Families are enabled globally and, unless a neighbor says
	// otherwise, on every neighbor; none means IPv4 unicast.
	Families []Family
	// Multipath enables ECMP across neighbor ASes (allow-multiple-as).
	Multipath       bool
	GracefulRestart bool
	Neighbors       []Neighbor
}

// Neighbor is one neighbor; zero fields are left out of the tree.
type Neighbor struct {
	Address     string
	PeerAS      uint32
	Description string
	Families    []Family
	// Timers in seconds.
	Hold, Keepalive, ConnectRetry uint16
	Passive                       bool
	Import, Export                Policy
}

type obj = map[string]any

func afiSafis(fs []Family) obj {
	var list []obj
	for _, f := range fs {
		name := "openconfig-bgp-types:" + string(f)
		list = append(list, obj{"afi-safi-name": name, "config": obj{"afi-safi-name": name, "enabled": true}})
	}
	return obj{"afi-safi": list}
}

// Tree is the config as a JSON object tree, for a test that adds to it.
func (b BGP) Tree() map[string]any {
	fams := b.Families
	if len(fams) == 0 {
		fams = []Family{IPv4Unicast}
	}
	global := obj{
		"config":    obj{"as": b.ASN, "router-id": b.RouterID},
		"afi-safis": afiSafis(fams),
	}
	if b.Multipath {
		global["use-multiple-paths"] = obj{"config": obj{"enabled": true},
			"ebgp": obj{"config": obj{"allow-multiple-as": true, "maximum-paths": 64}}}
	}
	if b.GracefulRestart {
		global["graceful-restart"] = obj{"config": obj{"enabled": true}}
	}
	var nbrs []obj
	for _, n := range b.Neighbors {
		cfg := obj{"neighbor-address": n.Address, "peer-as": n.PeerAS}
		if n.Description != "" {
			cfg["description"] = n.Description
		}
		nb := obj{"neighbor-address": n.Address, "config": cfg}
		timers := obj{}
		for leaf, v := range map[string]uint16{"hold-time": n.Hold, "keepalive-interval": n.Keepalive, "connect-retry": n.ConnectRetry} {
			if v != 0 {
				timers[leaf] = v
			}
		}
		if len(timers) > 0 {
			nb["timers"] = obj{"config": timers}
		}
		if n.Passive {
			nb["transport"] = obj{"config": obj{"passive-mode": true}}
		}
		apply := obj{}
		if n.Import != "" {
			apply["default-import-policy"] = n.Import
		}
		if n.Export != "" {
			apply["default-export-policy"] = n.Export
		}
		if len(apply) > 0 {
			nb["apply-policy"] = obj{"config": apply}
		}
		nf := n.Families
		if len(nf) == 0 {
			nf = fams
		}
		nb["afi-safis"] = afiSafis(nf)
		nbrs = append(nbrs, nb)
	}
	bgp := obj{"global": global}
	if len(nbrs) > 0 {
		bgp["neighbors"] = obj{"neighbor": nbrs}
	}
	return obj{"openconfig-network-instance:network-instances": obj{"network-instance": []obj{{
		"name":   "DEFAULT",
		"config": obj{"name": "DEFAULT", "type": "openconfig-network-instance-types:DEFAULT_INSTANCE"},
		"protocols": obj{"protocol": []obj{{
			"identifier": "openconfig-policy-types:BGP", "name": "BGP",
			"config": obj{"identifier": "openconfig-policy-types:BGP", "name": "BGP"},
			"bgp":    bgp,
		}}},
	}}}}
}

// JSON is the config file's text.
func (b BGP) JSON() []byte {
	out, err := json.MarshalIndent(b.Tree(), "", "  ")
	if err != nil {
		panic(fmt.Sprintf("configtest: %v", err)) // only plain values above
	}
	return append(out, '\n')
}

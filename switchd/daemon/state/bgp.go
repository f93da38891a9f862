package state

import (
	"net/netip"
	"slices"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bgp"
)

// Neighbors publishes the neighbors the speaker's feed reports changed
// (bgp.Speaker.DrainNeighbors) under the default instance's BGP
// protocol; a Removed one is deleted.
func (t *Tree) Neighbors(changed []bgp.NeighborState) error {
	var errs joinErrs
	for _, n := range changed {
		p := neighborPath(n.Address)
		if n.Removed {
			errs.add(t.publish(p, nil))
			continue
		}
		errs.add(t.publish(p, Neighbor(n)))
	}
	return errs.err()
}

// BGPGlobal publishes the global state: the local AS and router ID.
func (t *Tree) BGPGlobal(as uint32, routerID netip.Addr) error {
	g := &oc.NetworkInstance_Protocol_Bgp_Global{As: ygot.Uint32(as)}
	if routerID.IsValid() {
		g.RouterId = ygot.String(routerID.String())
	}
	return t.publish(append(bgpPath(), elem("global")), g)
}

// bgpPath is /network-instances/network-instance[name=DEFAULT]/protocols/
// protocol[identifier=BGP][name=BGP]/bgp.
func bgpPath() []*gpb.PathElem {
	return []*gpb.PathElem{elem("network-instances"), elem("network-instance", "name", "DEFAULT"),
		elem("protocols"), elem("protocol", "identifier", "BGP", "name", "BGP"), elem("bgp")}
}

func neighborPath(a netip.Addr) []*gpb.PathElem {
	return append(bgpPath(), elem("neighbors"), elem("neighbor", "neighbor-address", a.String()))
}

// ocFamilies are the AFI-SAFIs switchd speaks.
var ocFamilies = map[bgp.Family]oc.E_BgpTypes_AFI_SAFI_TYPE{
	bgp.IPv4Unicast: oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST,
	bgp.IPv6Unicast: oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST,
}

// Neighbor renders one neighbor's state: address, peer AS, session
// state, Established transitions and the last one, UPDATE and
// NOTIFICATION counts, and per configured family its prefix counts and
// whether the session negotiated it (active). GoBGP's received count is
// received-pre-policy; what its import policy accepted is received (the
// post-policy Adj-RIB-In) and installed (GoBGP keeps every accepted path
// in its Loc-RIB). sent is set only where the feed has it.
func Neighbor(n bgp.NeighborState) *oc.NetworkInstance_Protocol_Bgp_Neighbor {
	o := &oc.NetworkInstance_Protocol_Bgp_Neighbor{
		NeighborAddress:        ygot.String(n.Address.String()),
		PeerAs:                 ygot.Uint32(n.PeerAS),
		SessionState:           sessionState(n.State),
		EstablishedTransitions: ygot.Uint64(n.EstablishedTransitions),
		Messages: &oc.NetworkInstance_Protocol_Bgp_Neighbor_Messages{
			Received: &oc.NetworkInstance_Protocol_Bgp_Neighbor_Messages_Received{
				UPDATE: ygot.Uint64(n.Messages.UpdatesReceived), NOTIFICATION: ygot.Uint64(n.Messages.NotificationsReceived)},
			Sent: &oc.NetworkInstance_Protocol_Bgp_Neighbor_Messages_Sent{
				UPDATE: ygot.Uint64(n.Messages.UpdatesSent), NOTIFICATION: ygot.Uint64(n.Messages.NotificationsSent)},
		},
	}
	if n.PeerAS == 0 {
		o.PeerAs = nil
	}
	if !n.LastEstablished.IsZero() {
		o.LastEstablished = ygot.Uint64(uint64(n.LastEstablished.UnixNano()))
	}
	for f, typ := range ocFamilies {
		_, counted := n.PrefixesReceived[f]
		active := slices.Contains(n.NegotiatedFamilies, f)
		if !counted && !active {
			continue
		}
		af := o.GetOrCreateAfiSafi(typ)
		af.Active = ygot.Bool(active)
		p := af.GetOrCreatePrefixes()
		p.ReceivedPrePolicy = count32(n.PrefixesReceived[f])
		p.Received = count32(n.PrefixesAccepted[f])
		p.Installed = count32(n.PrefixesAccepted[f])
		if c, ok := n.PrefixesSent[f]; ok {
			p.Sent = count32(c)
		}
	}
	return o
}

// count32 is a count in the model's 32 bits, saturated.
func count32(v uint64) *uint32 { return ygot.Uint32(uint32(min(v, 1<<32-1))) }

func sessionState(s bgp.SessionState) oc.E_Neighbor_SessionState {
	switch s {
	case bgp.StateIdle:
		return oc.Neighbor_SessionState_IDLE
	case bgp.StateConnect:
		return oc.Neighbor_SessionState_CONNECT
	case bgp.StateActive:
		return oc.Neighbor_SessionState_ACTIVE
	case bgp.StateOpenSent:
		return oc.Neighbor_SessionState_OPENSENT
	case bgp.StateOpenConfirm:
		return oc.Neighbor_SessionState_OPENCONFIRM
	case bgp.StateEstablished:
		return oc.Neighbor_SessionState_ESTABLISHED
	}
	return oc.Neighbor_SessionState_UNSET
}

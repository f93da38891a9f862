package state

import (
	"slices"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/platform"
)

// linkSeen is what the Tree remembers of an interface between samples:
// the kernel keeps no time of the last oper change, so the Tree notes
// when it saw one.
type linkSeen struct {
	oper       oc.E_Interface_OperStatus
	lastChange time.Time // zero until a change was seen
	// last is the sample last rendered: an interface whose sample did
	// not change (an idle workload's veth) is not rendered again, unless
	// its last publishing failed (stateOK, countersOK false).
	last                platform.LinkStats
	stateOK, countersOK bool
}

// Links publishes every interface of the namespace (the full set, as
// platform.LinkStatsReader reads it): state, counters and subinterface
// 0's addresses under /interfaces/interface[name]. An interface missing
// from ls is deleted. last-change is the time the Tree first saw the
// oper status differ from the previous sample (unset until then).
//
// The counters are a subtree of their own (state/counters): on a busy
// interface they change every sample while the rest does not, and
// rendering 10 leaves instead of the interface's 30-odd is most of the
// cost saved.
func (t *Tree) Links(ls []platform.LinkStats) error {
	now := t.now()
	var errs joinErrs
	seen := make(map[string]bool, len(ls))
	for _, l := range ls {
		seen[l.Name] = true
		oper := operStatus(l)
		s, ok := t.links[l.Name]
		if ok && s.oper != oper {
			s.lastChange = now
		}
		s.oper = oper
		// An idle interface costs two comparisons: no path is built.
		if !ok || !s.stateOK || !sameLink(s.last, l) {
			i := Interface(l, s.lastChange)
			i.Counters = nil
			err := t.publish(interfacePath(l.Name), i)
			s.stateOK = err == nil
			errs.add(err)
		}
		if !ok || !s.countersOK || s.last.Counters != l.Counters || s.last.CarrierChanges != l.CarrierChanges {
			err := t.publish(countersPath(l.Name), interfaceCounters(l))
			s.countersOK = err == nil
			errs.add(err)
		}
		s.last = l
		t.links[l.Name] = s
	}
	for name := range t.links {
		if seen[name] {
			continue
		}
		if err := t.publish(interfacePath(name), nil); err != nil {
			errs.add(err) // kept: the next sample deletes it again
			continue
		}
		// Gone from the cache with the interface.
		delete(t.subtrees, pathString(countersPath(name)))
		t.forgetHardware(name)
		delete(t.links, name)
	}
	return errs.err()
}

// sameLink reports whether two samples of a link render the same, but
// for the counters.
func sameLink(a, b platform.LinkStats) bool {
	return a.Index == b.Index && a.Kind == b.Kind && a.Type == b.Type && a.Flags == b.Flags &&
		a.OperState == b.OperState && a.MTU == b.MTU && slices.Equal(a.Addrs, b.Addrs)
}

func countersPath(name string) []*gpb.PathElem {
	return append(interfacePath(name), elem("state"), elem("counters"))
}

func interfacePath(name string) []*gpb.PathElem {
	return []*gpb.PathElem{elem("interfaces"), elem("interface", "name", name)}
}

// Interface renders one link as /interfaces/interface state: name, type
// (when the kernel's kind or hardware type says), admin and oper status,
// MTU, ifindex, last-change (if not zero), the 64-bit counters, and its
// addresses under subinterface 0.
func Interface(l platform.LinkStats, lastChange time.Time) *oc.Interface {
	i := &oc.Interface{
		Name:        ygot.String(l.Name),
		OperStatus:  operStatus(l),
		AdminStatus: oc.Interface_AdminStatus_DOWN,
		Enabled:     ygot.Bool(l.Flags&unix.IFF_UP != 0),
		Mtu:         ygot.Uint16(uint16(min(l.MTU, 65535))), // lo has 65536; the model stops at 65535
		Ifindex:     ygot.Uint32(uint32(l.Index)),
		Type:        interfaceType(l),
	}
	if l.Flags&unix.IFF_UP != 0 {
		i.AdminStatus = oc.Interface_AdminStatus_UP
	}
	if !lastChange.IsZero() {
		i.LastChange = ygot.Uint64(uint64(lastChange.UnixNano()))
	}
	i.Counters = interfaceCounters(l)
	if len(l.Addrs) == 0 {
		return i
	}
	sub := &oc.Interface_Subinterface{Index: ygot.Uint32(0)}
	i.Subinterface = map[uint32]*oc.Interface_Subinterface{0: sub}
	for _, p := range l.Addrs {
		ip, bits := p.Addr().String(), ygot.Uint8(uint8(p.Bits()))
		if p.Addr().Is4() {
			a := sub.GetOrCreateIpv4().GetOrCreateAddress(ip)
			a.PrefixLength = bits
			continue
		}
		a := sub.GetOrCreateIpv6().GetOrCreateAddress(ip)
		a.PrefixLength = bits
		if p.Addr().IsLinkLocalUnicast() {
			a.Origin = oc.IfIp_IpAddressOrigin_LINK_LAYER
		}
	}
	return i
}

// interfaceCounters renders the kernel's 64-bit counters.
func interfaceCounters(l platform.LinkStats) *oc.Interface_Counters {
	c := l.Counters
	return &oc.Interface_Counters{
		InOctets: ygot.Uint64(c.RxBytes), InPkts: ygot.Uint64(c.RxPackets),
		InErrors: ygot.Uint64(c.RxErrors), InDiscards: ygot.Uint64(c.RxDropped),
		InMulticastPkts: ygot.Uint64(c.Multicast),
		OutOctets:       ygot.Uint64(c.TxBytes), OutPkts: ygot.Uint64(c.TxPackets),
		OutErrors: ygot.Uint64(c.TxErrors), OutDiscards: ygot.Uint64(c.TxDropped),
		CarrierTransitions: ygot.Uint64(uint64(l.CarrierChanges)),
	}
}

// operStatus maps the kernel's RFC 2863 state. UNKNOWN is what the
// loopback and tun devices report while they pass traffic: their flags
// decide.
func operStatus(l platform.LinkStats) oc.E_Interface_OperStatus {
	switch l.OperState {
	case platform.OperUp:
		return oc.Interface_OperStatus_UP
	case platform.OperDown:
		return oc.Interface_OperStatus_DOWN
	case platform.OperLowerLayerDown:
		return oc.Interface_OperStatus_LOWER_LAYER_DOWN
	case platform.OperTesting:
		return oc.Interface_OperStatus_TESTING
	case platform.OperDormant:
		return oc.Interface_OperStatus_DORMANT
	case platform.OperNotPresent:
		return oc.Interface_OperStatus_NOT_PRESENT
	}
	switch {
	case l.Flags&unix.IFF_UP == 0:
		return oc.Interface_OperStatus_DOWN
	case l.Flags&unix.IFF_LOWER_UP != 0:
		return oc.Interface_OperStatus_UP
	}
	return oc.Interface_OperStatus_UNKNOWN
}

// interfaceType is the IANA type of a link, where the kernel's kind or
// hardware type tells it; unset otherwise (the loopback's
// softwareLoopback is not among the generated identities).
func interfaceType(l platform.LinkStats) oc.E_IETFInterfaces_InterfaceType {
	switch l.Kind {
	case "bridge":
		return oc.IETFInterfaces_InterfaceType_bridge
	case "vlan":
		return oc.IETFInterfaces_InterfaceType_l2vlan
	case "bond", "team":
		return oc.IETFInterfaces_InterfaceType_ieee8023adLag
	}
	if l.Type == unix.ARPHRD_ETHER {
		return oc.IETFInterfaces_InterfaceType_ethernetCsmacd
	}
	return oc.IETFInterfaces_InterfaceType_UNSET
}

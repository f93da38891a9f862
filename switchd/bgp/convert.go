package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/config/oc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Conversions between switchd's types and GoBGP's API structs. Nothing
// outside this package sees a GoBGP type.

var (
	apiFamilyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	apiFamilyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

func (f Family) api() *api.Family {
	if f == IPv6Unicast {
		return apiFamilyV6
	}
	return apiFamilyV4
}

func familyFromAPI(f *api.Family) (Family, bool) {
	switch {
	case f == nil || f.Safi != api.Family_SAFI_UNICAST:
		return 0, false
	case f.Afi == api.Family_AFI_IP:
		return IPv4Unicast, true
	case f.Afi == api.Family_AFI_IP6:
		return IPv6Unicast, true
	}
	return 0, false
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4Unicast
	}
	return IPv6Unicast
}

func (g global) api() *api.Global {
	ag := &api.Global{
		Asn:        g.ASN,
		RouterId:   g.RouterID.String(),
		ListenPort: g.ListenPort,
		// GoBGP numbers these by its OpenConfig afi-safi enum, not by
		// AFI/SAFI.
		Families: []uint32{
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
		},
		UseMultiplePaths: g.Multipath,
	}
	for _, a := range g.Listen {
		ag.ListenAddresses = append(ag.ListenAddresses, a.String())
	}
	return ag
}

func secs(d time.Duration) uint64 { return uint64(d / time.Second) }

func neighborAPI(n Neighbor, restarting bool, deferral time.Duration) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.PeerAS,
			LocalAsn:        n.LocalAS,
			Description:     n.Description,
			AuthPassword:    n.AuthPassword,
			AdminDown:       !n.Enabled,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:                 secs(n.Timers.ConnectRetry),
			HoldTime:                     secs(n.Timers.HoldTime),
			KeepaliveInterval:            secs(n.Timers.Keepalive),
			MinimumAdvertisementInterval: secs(n.Timers.MinAdvertisementInterval),
		}},
		Transport:       &api.Transport{PassiveMode: n.Passive},
		GracefulRestart: grAPI(n.GracefulRestart, restarting, deferral),
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	gr := p.GracefulRestart != nil
	for _, f := range n.Families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f.api(), Enabled: true}}
		if gr {
			// GoBGP announces (and keeps stale) only the families whose
			// MpGracefulRestart is enabled.
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	return p
}

// originPath is the path GoBGP announces for a prefix we originate. The
// unspecified next hop makes GoBGP put the session's own address in
// UPDATEs to eBGP peers.
func originPath(p netip.Prefix) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, err
	}
	attrs := []proto.Message{&api.OriginAttribute{Origin: 0}} // IGP
	fam := apiFamilyV4
	if p.Addr().Is4() {
		attrs = append(attrs, &api.NextHopAttribute{NextHop: "0.0.0.0"})
	} else {
		fam = apiFamilyV6
		attrs = append(attrs, &api.MpReachNLRIAttribute{Family: fam, NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
	}
	path := &api.Path{Nlri: nlri, Family: fam}
	for _, a := range attrs {
		any, err := anypb.New(a)
		if err != nil {
			return nil, err
		}
		path.Pattrs = append(path.Pattrs, any)
	}
	return path, nil
}

// candidate is one path of a destination as the watch reported it, in
// GoBGP's order (best first).
type candidate struct {
	local   bool // originated by this speaker
	nextHop netip.Addr
	asPath  string // AS_PATH rendered, compared for multipath without relax
}

// pathFromAPI decodes a path of the IPv4/IPv6 unicast table. ok is false
// for paths of other families.
func pathFromAPI(p *api.Path) (prefix netip.Prefix, c candidate, withdraw bool, ok bool, err error) {
	if _, fok := familyFromAPI(p.Family); !fok || p.Nlri == nil {
		return prefix, c, false, false, nil
	}
	var nlri api.IPAddressPrefix
	if err := p.Nlri.UnmarshalTo(&nlri); err != nil {
		return prefix, c, false, false, fmt.Errorf("decode nlri: %w", err)
	}
	addr, err := netip.ParseAddr(nlri.Prefix)
	if err != nil {
		return prefix, c, false, false, fmt.Errorf("decode nlri %q: %w", nlri.Prefix, err)
	}
	prefix = netip.PrefixFrom(addr, int(nlri.PrefixLen)).Masked()
	// Locally originated paths have no source address; GoBGP renders the
	// nil net.IP as "<nil>".
	_, serr := netip.ParseAddr(p.NeighborIp)
	c.local = serr != nil
	for _, a := range p.Pattrs {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue // an attribute type GoBGP's API knows and we do not need
		}
		switch v := m.(type) {
		case *api.NextHopAttribute:
			c.nextHop, _ = netip.ParseAddr(v.NextHop)
		case *api.MpReachNLRIAttribute:
			// The global next hop comes first; a link-local one may follow.
			if len(v.NextHops) > 0 {
				c.nextHop, _ = netip.ParseAddr(v.NextHops[0])
			}
		case *api.AsPathAttribute:
			var b strings.Builder
			for _, s := range v.Segments {
				fmt.Fprintf(&b, "%d:%v;", s.Type, s.Numbers)
			}
			c.asPath = b.String()
		}
	}
	c.nextHop = c.nextHop.Unmap()
	return prefix, c, p.IsWithdraw, true, nil
}

func sessionStateFromAPI(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_IDLE:
		return StateIdle
	case api.PeerState_CONNECT:
		return StateConnect
	case api.PeerState_ACTIVE:
		return StateActive
	case api.PeerState_OPENSENT:
		return StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

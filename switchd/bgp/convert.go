package bgp

import (
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
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
			// No Description: GoBGP counts it as session config and
			// resets the session when it changes. It is a note for
			// people, kept in switchd's own neighbor record.
			AuthPassword: n.AuthPassword,
			AdminDown:    !n.Enabled,
			// The loop check is an import policy instead (loop.go).
			AllowOwnAsn: allowOwnASOff,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:                 secs(n.Timers.ConnectRetry),
			HoldTime:                     secs(n.Timers.HoldTime),
			KeepaliveInterval:            secs(n.Timers.Keepalive),
			MinimumAdvertisementInterval: secs(n.Timers.MinAdvertisementInterval),
			// After the speaker's own ResetPeer (new hold time,
			// stale-routes-time) reconnect after 5 s, not GoBGP's 30:
			// as long as a GoBGP peer idles after a NOTIFICATION that
			// ends the session for good (holdtimeIdle), so that both
			// leave Idle together; each closes connections that arrive
			// while it idles. One that takes it as a graceful restart
			// (RFC 8538's N bit) is back at once and keeps trying.
			IdleHoldTimeAfterReset: 5,
		}},
		Transport:       &api.Transport{PassiveMode: n.Passive},
		GracefulRestart: grAPI(n.GracefulRestart, restarting, deferral),
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	if n.Interface != "" {
		// Its local address is the interface's link-local one
		// (unnumbered.go), which a socket can bind to only on it.
		p.Transport.BindInterface = n.Interface
	}
	if n.MultihopTTL != 0 {
		// GoBGP sets it on the sockets it dials and on accepted ones
		// (fsm.go connectLoop, setPeerConnTTL); eBGP without it gets TTL 1.
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.MultihopTTL)}
	}
	gr := p.GracefulRestart != nil
	for _, f := range n.Families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f.api(), Enabled: true}}
		if gr {
			// GoBGP announces (and keeps stale) only the families whose
			// MpGracefulRestart is enabled.
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		for _, pl := range n.PrefixLimits {
			if pl.Family == f {
				// GoBGP's "shutdown threshold" only logs a warning.
				af.PrefixLimits = &api.PrefixLimit{Family: f.api(), MaxPrefixes: pl.MaxPrefixes, ShutdownThresholdPct: uint32(pl.WarningThresholdPct)}
			}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	return p
}

// originPath is the path GoBGP announces for a prefix we originate. The
// unspecified next hop makes GoBGP put the session's own address in
// UPDATEs to eBGP peers.
func originPath(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	fam := bgp.RF_IPv4_UC
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = bgp.RF_IPv6_UC
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

// candidate is one path of a destination as the watch reported it, in
// GoBGP's order (best first).
type candidate struct {
	local   bool // originated by this speaker
	nextHop netip.Addr
	src     netip.Addr // the neighbor it came from (a multipath delta's key, with id)
	id      uint32     // its ADD-PATH id
	asPath  string     // AS_PATH encoded, compared for multipath without relax
	comm    string     // community attributes (pathDecoder), "" for none
}

// pathDecoder takes what the route table needs from GoBGP's native paths:
// prefix, next hop, source, AS_PATH (compared only for equality, so kept
// in its wire encoding) and the community attributes (commKind-tagged wire
// values, decoded once per distinct list when the table interns them).
// The paths of one UPDATE share their attributes, so equal ones in a row
// share one string, and an AS_PATH seen last is not encoded again. Nothing
// of GoBGP's is kept past the call but the pointer of the last AS_PATH. A
// pathDecoder is used by one goroutine.
type pathDecoder struct {
	lastASAttr *bgp.PathAttributeAsPath
	lastASPath string
	lastComm   string
	commBuf    []byte
}

func (d *pathDecoder) decode(p *apiutil.Path) (prefix netip.Prefix, c candidate, ok bool) {
	if p.Family != bgp.RF_IPv4_UC && p.Family != bgp.RF_IPv6_UC {
		return prefix, c, false
	}
	n, isPrefix := p.Nlri.(*bgp.IPAddrPrefix)
	if !isPrefix {
		return prefix, c, false
	}
	prefix = n.Prefix.Masked()
	// Locally originated paths have no source address.
	c.local = !p.PeerAddress.IsValid() || p.PeerAddress.IsUnspecified()
	c.src, c.id = p.PeerAddress, p.RemoteID
	comm := d.commBuf[:0]
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			c.nextHop = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			c.nextHop = mpNextHop(a)
		case *bgp.PathAttributeAsPath:
			if a != d.lastASAttr {
				d.lastASAttr = a
				if b, err := a.Serialize(); err == nil && string(b) != d.lastASPath {
					d.lastASPath = string(b)
				}
			}
			c.asPath = d.lastASPath
		case *bgp.PathAttributeCommunities:
			comm = appendStandard(comm, a.Value)
		case *bgp.PathAttributeLargeCommunities:
			comm = appendLarge(comm, a.Values)
		case *bgp.PathAttributeExtendedCommunities:
			comm = appendExtended(comm, a.Value)
		}
	}
	if string(comm) != d.lastComm {
		d.lastComm = string(comm)
	}
	d.commBuf = comm
	c.comm = d.lastComm
	c.nextHop = c.nextHop.Unmap()
	return prefix, c, true
}

// sessionStateFromAPI maps a ListPeer session state: the API numbers the
// FSM's states from 1 (0 is unspecified), in the FSM's order
// (TestSessionStateFromAPI).
func sessionStateFromAPI(s api.PeerState_SessionState) SessionState {
	return sessionStateFromFSM(bgp.FSMState(s) - 1)
}

// sessionStateFromFSM maps a peer event's session state.
func sessionStateFromFSM(s bgp.FSMState) SessionState {
	switch s {
	case bgp.BGP_FSM_CONNECT:
		return StateConnect
	case bgp.BGP_FSM_ACTIVE:
		return StateActive
	case bgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

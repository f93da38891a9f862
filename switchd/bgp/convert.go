package bgp

import (
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/config/oc"
	"google.golang.org/protobuf/encoding/protowire"
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
			// as long as a GoBGP peer idles after our NOTIFICATION
			// (holdtimeIdle), so that both leave Idle together; each
			// closes connections that arrive while it idles.
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
	comm    string // community attributes as received (pathDecoder), "" for none
}

// Type URLs of the Any messages pathDecoder reads; every other attribute
// is skipped without being decoded. Constants, not derived from the
// messages' descriptors, so that the decoder's switch compiles to a search
// on the length that compares a URL only with the constants of its length
// (the communities URL, as long as MpReach's, sorts first): compared with
// each variable in turn, the communities attribute of every path cost two
// full string compares. TestTypeURLs checks them against what GoBGP's
// messages marshal with.
const (
	urlIPAddressPrefix = "type.googleapis.com/apipb.IPAddressPrefix"
	urlNextHop         = "type.googleapis.com/apipb.NextHopAttribute"
	urlMpReach         = "type.googleapis.com/apipb.MpReachNLRIAttribute"
	urlAsPath          = "type.googleapis.com/apipb.AsPathAttribute"
	urlCommunities     = "type.googleapis.com/apipb.CommunitiesAttribute"
	urlLargeComm       = "type.googleapis.com/apipb.LargeCommunitiesAttribute"
	urlExtComm         = "type.googleapis.com/apipb.ExtendedCommunitiesAttribute"
)

// Field numbers in GoBGP's api (attribute.proto) of what pathDecoder reads.
const (
	fieldPrefixLen   = 1 // IPAddressPrefix.prefix_len
	fieldPrefix      = 2 // IPAddressPrefix.prefix
	fieldNextHop     = 1 // NextHopAttribute.next_hop
	fieldMpNextHops  = 2 // MpReachNLRIAttribute.next_hops
	wireVarint       = protowire.VarintType
	wireBytes        = protowire.BytesType
	maxPrefixLenBits = 128
)

// pathDecoder decodes the prefix, next hop and AS_PATH of a path straight
// from the protobuf encoding of GoBGP's Any messages: GoBGP has just
// marshalled every attribute of every path for its watch, and unmarshalling
// them all again (anypb.UnmarshalNew) was most of this adapter's CPU time
// and garbage. The AS_PATH is compared only for equality, so its encoding
// is kept as it is; equal ones in a row share one string. So are the
// community attributes, concatenated (commKind tags each), which the route
// table decodes once per distinct list when it interns them. A
// pathDecoder is used by one goroutine.
type pathDecoder struct {
	lastASPath string
	lastComm   string
	commBuf    []byte
}

func (d *pathDecoder) decode(p *api.Path) (prefix netip.Prefix, c candidate, withdraw bool, ok bool, err error) {
	if _, fok := familyFromAPI(p.Family); !fok || p.Nlri == nil {
		return prefix, c, false, false, nil
	}
	if p.Nlri.TypeUrl != urlIPAddressPrefix {
		return prefix, c, false, false, fmt.Errorf("decode nlri: type %s, want %s", p.Nlri.TypeUrl, urlIPAddressPrefix)
	}
	if prefix, err = decodePrefix(p.Nlri.Value); err != nil {
		return prefix, c, false, false, fmt.Errorf("decode nlri: %w", err)
	}
	// Locally originated paths have no source address; GoBGP renders the
	// nil net.IP as "<nil>".
	_, serr := netip.ParseAddr(p.NeighborIp)
	c.local = serr != nil
	comm := d.commBuf[:0]
	for _, a := range p.Pattrs {
		switch a.TypeUrl {
		case urlNextHop:
			if b := firstBytesField(a.Value, fieldNextHop); b != nil {
				c.nextHop, _ = parseAddrBytes(b)
			}
		case urlMpReach:
			// The global next hop comes first; a link-local one may
			// follow, the one to use when the global is :: (unnumbered.go).
			c.nextHop = mpNextHop(a.Value)
		case urlAsPath:
			if string(a.Value) != d.lastASPath {
				d.lastASPath = string(a.Value)
			}
			c.asPath = d.lastASPath
		case urlCommunities:
			comm = appendCommKey(comm, commStandard, a.Value)
		case urlLargeComm:
			comm = appendCommKey(comm, commLarge, a.Value)
		case urlExtComm:
			comm = appendCommKey(comm, commExtended, a.Value)
		}
	}
	if string(comm) != d.lastComm {
		d.lastComm = string(comm)
	}
	d.commBuf = comm
	c.comm = d.lastComm
	c.nextHop = c.nextHop.Unmap()
	return prefix, c, p.IsWithdraw, true, nil
}

// decodePrefix decodes an api.IPAddressPrefix.
func decodePrefix(b []byte) (netip.Prefix, error) {
	var bits uint64
	var addr []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return netip.Prefix{}, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == fieldPrefixLen && typ == wireVarint:
			bits, n = protowire.ConsumeVarint(b)
		case num == fieldPrefix && typ == wireBytes:
			addr, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return netip.Prefix{}, protowire.ParseError(n)
		}
		b = b[n:]
	}
	a, err := parseAddrBytes(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("prefix %q: %w", addr, err)
	}
	if bits > uint64(a.BitLen()) || bits > maxPrefixLenBits {
		return netip.Prefix{}, fmt.Errorf("prefix %v/%d: length out of range", a, bits)
	}
	return netip.PrefixFrom(a, int(bits)).Masked(), nil
}

// firstBytesField returns the first occurrence of bytes field num in the
// message m, nil if there is none or m is malformed.
func firstBytesField(m []byte, num protowire.Number) []byte {
	for len(m) > 0 {
		n, typ, l := protowire.ConsumeTag(m)
		if l < 0 {
			return nil
		}
		m = m[l:]
		if n == num && typ == wireBytes {
			v, l := protowire.ConsumeBytes(m)
			if l < 0 {
				return nil
			}
			return v
		}
		if l = protowire.ConsumeFieldValue(n, typ, m); l < 0 {
			return nil
		}
		m = m[l:]
	}
	return nil
}

// parseAddrBytes parses an address like netip.ParseAddr; IPv4 without
// allocating.
func parseAddrBytes(b []byte) (netip.Addr, error) {
	var a [4]byte
	i, v, digits := 0, 0, 0
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9' && digits < 3 && !(digits > 0 && v == 0):
			v = v*10 + int(ch-'0')
			digits++
			if v > 255 {
				return netip.ParseAddr(string(b))
			}
		case ch == '.' && digits > 0 && i < 3:
			a[i] = byte(v)
			i, v, digits = i+1, 0, 0
		default: // IPv6, or not an address: the library's parser decides
			return netip.ParseAddr(string(b))
		}
	}
	if i != 3 || digits == 0 {
		return netip.ParseAddr(string(b))
	}
	a[3] = byte(v)
	return netip.AddrFrom4(a), nil
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

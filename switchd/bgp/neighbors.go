package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// Neighbors reports the state of every configured neighbor, sorted by
// address.
func (s *Speaker) Neighbors(ctx context.Context) ([]NeighborState, error) {
	s.mu.Lock()
	srv, running := s.srv, s.running != nil
	conf := make(map[netip.Addr]Neighbor, len(s.peers))
	since := make(map[netip.Addr]time.Time, len(s.since))
	for a, n := range s.peers {
		conf[a], since[a] = n, s.since[a]
	}
	s.mu.Unlock()
	now := time.Now()
	if srv == nil || !running {
		return nil, errors.New("list bgp neighbors: speaker not running")
	}
	var out []NeighborState
	var errs []error
	// EnableAdvertised makes GoBGP count what it sends; it walks the RIB
	// per peer, which a state read can afford.
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.GetConf().GetNeighborAddress() == sentinelAddr.String() {
			return // the restart sentinel is not a neighbor
		}
		ns, err := neighborStateFromAPI(p)
		if err != nil {
			errs = append(errs, err)
			return
		}
		down := since[ns.Address]
		if dt := p.GetTimers().GetState().GetDowntime(); dt != nil && dt.AsTime().After(down) {
			down = dt.AsTime()
		}
		ns.LastError = s.lastErrorText(ns, conf[ns.Address], down, now)
		if fs, ok := s.nbrs.get(ns.Address); ok {
			ns.EstablishedTransitions, ns.LastEstablished = fs.EstablishedTransitions, fs.LastEstablished
		}
		out = append(out, ns)
	})
	if err != nil {
		return nil, fmt.Errorf("list bgp neighbors: %w", err)
	}
	slices.SortFunc(out, func(a, b NeighborState) int { return a.Address.Compare(b.Address) })
	return out, errors.Join(errs...)
}

func neighborStateFromAPI(p *api.Peer) (NeighborState, error) {
	var ns NeighborState
	addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
	if err != nil {
		return ns, fmt.Errorf("neighbor %q from gobgp: %w", p.GetConf().GetNeighborAddress(), err)
	}
	ns.Address = addr.Unmap()
	ns.PeerAS = p.GetConf().GetPeerAsn()
	st := p.GetState()
	ns.State = sessionStateFromAPI(st.GetSessionState())
	if ns.State == StateEstablished {
		if up := p.GetTimers().GetState().GetUptime(); up != nil && up.GetSeconds() > 0 {
			// GoBGP records it in whole seconds.
			ns.EstablishedSince = time.Unix(up.GetSeconds(), 0)
		}
	}
	if m := st.GetMessages(); m != nil {
		ns.Messages = MessageCounts{UpdatesReceived: m.GetReceived().GetUpdate(), UpdatesSent: m.GetSent().GetUpdate(),
			NotificationsReceived: m.GetReceived().GetNotification(), NotificationsSent: m.GetSent().GetNotification()}
	}
	ns.PrefixesReceived = make(map[Family]uint64)
	ns.PrefixesAccepted = make(map[Family]uint64)
	ns.PrefixesSent = make(map[Family]uint64)
	var configured []Family
	for _, af := range p.GetAfiSafis() {
		f, ok := familyFromAPI(af.GetConfig().GetFamily())
		if !ok || !af.GetConfig().GetEnabled() {
			continue
		}
		configured = append(configured, f)
		if s := af.GetState(); s != nil {
			ns.PrefixesReceived[f] = s.GetReceived()
			ns.PrefixesAccepted[f] = s.GetAccepted()
			ns.PrefixesSent[f] = s.GetAdvertised()
		}
	}
	if ns.State == StateEstablished {
		ns.NegotiatedFamilies = negotiated(configured, st.GetRemoteCap())
	}
	return ns, nil
}

// negotiated is the configured families the peer announced in its OPEN's
// multiprotocol capabilities; a peer without any implies IPv4 unicast
// (RFC 4760 1).
func negotiated(configured []Family, remoteCaps []*api.Capability) []Family {
	var remote []Family
	sawMP := false
	for _, c := range remoteCaps {
		mp := c.GetMultiProtocol()
		if mp == nil {
			continue
		}
		sawMP = true
		if f, ok := familyFromAPI(mp.GetFamily()); ok {
			remote = append(remote, f)
		}
	}
	if !sawMP {
		remote = []Family{IPv4Unicast}
	}
	var out []Family
	for _, f := range configured {
		if slices.Contains(remote, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bgp"
)

var families = map[oc.E_BgpTypes_AFI_SAFI_TYPE]bgp.Family{
	oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST: bgp.IPv4Unicast,
	oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST: bgp.IPv6Unicast,
}

func afiSafiEntry(p path, name oc.E_BgpTypes_AFI_SAFI_TYPE) path {
	return p.child("afi-safis").entry("afi-safi", []kv{{"afi-safi-name", enumName(name)}})
}

// bgp translates protocol[identifier=BGP]/bgp (at p) into c.
func (t *translator) bgp(pr *oc.NetworkInstance_Protocol, p path, c *bgp.Config) {
	b := pr.GetBgp()
	g := b.GetGlobal()
	gp := p.child("global")
	if g.As == nil || *g.As == 0 {
		t.add(gp.child("config").child("as"), "BGP needs the local AS number")
	} else {
		c.ASN = *g.As
	}
	// The speaker's validation wants it non-zero IPv4; the schema has
	// already refused what is not a dotted quad.
	if g.RouterId == nil {
		t.add(gp.child("config").child("router-id"), "BGP needs a router-id (an IPv4 dotted-quad)")
	} else if id, err := netip.ParseAddr(*g.RouterId); err != nil {
		t.add(gp.child("config").child("router-id"), fmt.Sprintf("router-id %q is not a non-zero IPv4 dotted-quad", *g.RouterId))
	} else {
		c.RouterID = id
	}
	if mp := g.UseMultiplePaths; mp != nil {
		c.Multipath.Enabled = mp.GetEnabled()
		c.Multipath.MultipleAS = mp.GetEbgp().GetAllowMultipleAs()
		c.Multipath.MaxPaths = mp.GetEbgp().GetMaximumPaths()
	}

	t.globalGR(g.GracefulRestart, gp, c)
	if g.ApplyPolicy != nil {
		t.add(gp.child("apply-policy"), "global apply-policy is not supported: apply policies per neighbor or peer group")
	}
	t.routingPolicy(t.rp, c)

	// Families enabled for the instance; a neighbor can use only these.
	enabled := map[bgp.Family]bool{}
	for name, af := range g.AfiSafi {
		f, ok := families[name]
		if !ok {
			t.add(afiSafiEntry(gp, name), "address family not supported by switchd (IPV4_UNICAST and IPV6_UNICAST are)")
			continue
		}
		enabled[f] = af.GetEnabled()
	}

	for name, pg := range b.PeerGroup {
		pgp := p.child("peer-groups").entry("peer-group", []kv{{"peer-group-name", name}})
		for af := range pg.AfiSafi {
			if _, ok := families[af]; !ok {
				t.add(afiSafiEntry(pgp, af), "address family not supported by switchd (IPV4_UNICAST and IPV6_UNICAST are)")
			}
		}
	}

	for _, addr := range sortedKeys(b.Neighbor) {
		n := b.Neighbor[addr]
		np := p.child("neighbors").entry("neighbor", []kv{{"neighbor-address", addr}})
		if nb, ok := t.neighbor(n, b, np, enabled, c); ok {
			unnumberedFamilies(&nb, enabled)
			c.Neighbors = append(c.Neighbors, nb)
		}
	}
	t.interfaceNeighbors(b, p, enabled, c)
}

// timers translates a neighbor's timers, each leaf from the neighbor or
// else its peer group (whose config container is at pgCfg). The speaker's
// validation checks their bounds (bgp.FieldHoldTime, bgp.FieldKeepalive);
// here only what it cannot see: a leaf given as 0, which bgp.Timers reads
// as "GoBGP's default".
func (t *translator) timers(np, pgCfg path, inGroup bool, nt oc.NetworkInstance_Protocol_Bgp_Neighbor_Timers, gt oc.NetworkInstance_Protocol_Bgp_PeerGroup_Timers, nb *bgp.Neighbor) {
	// pick returns the value and the path of the leaf that gave it.
	pick := func(nv, gv *uint16, leaf string) (time.Duration, path, bool) {
		switch {
		case nv != nil:
			return seconds(*nv), np.child("timers").child("config").child(leaf), true
		case gv != nil && inGroup:
			return seconds(*gv), pgCfg[:len(pgCfg)-1].child("timers").child("config").child(leaf), true
		}
		return 0, nil, false
	}
	cr, _, _ := pick(nt.ConnectRetry, gt.ConnectRetry, "connect-retry")
	// GoBGP 3.37 takes the leaf and never uses it: UPDATEs go out as
	// soon as they are ready. Zero says just that; anything else would be
	// accepted and not applied.
	if mai, mp, set := pick(nt.MinimumAdvertisementInterval, gt.MinimumAdvertisementInterval, "minimum-advertisement-interval"); set && mai != 0 {
		t.add(mp, fmt.Sprintf("minimum-advertisement-interval %v: not supported by switchd (UPDATEs are sent as soon as they are ready); leave it out or give 0", mai))
	}
	hold, hp, holdSet := pick(nt.HoldTime, gt.HoldTime, "hold-time")
	ka, kp, kaSet := pick(nt.KeepaliveInterval, gt.KeepaliveInterval, "keepalive-interval")
	if holdSet && hold == 0 {
		// GoBGP takes 0 for "unset" and runs 90 s: refused rather than
		// accepted and not applied.
		t.add(hp, "hold-time 0 (no hold timer) is not supported by switchd: give 3 seconds or more")
	}
	if kaSet && ka == 0 {
		t.add(kp, "keepalive-interval 0 (no keepalives) needs hold-time 0, which switchd does not support")
	}
	if holdSet {
		t.leafOf(nb.Address, bgp.FieldHoldTime, hp)
	}
	if kaSet {
		t.leafOf(nb.Address, bgp.FieldKeepalive, kp)
	}
	nb.Timers = bgp.Timers{ConnectRetry: cr, HoldTime: hold, Keepalive: ka}
}

func (t *translator) neighbor(n *oc.NetworkInstance_Protocol_Bgp_Neighbor, b *oc.NetworkInstance_Protocol_Bgp, np path, enabled map[bgp.Family]bool, c *bgp.Config) (bgp.Neighbor, bool) {
	before := len(t.list)
	cfg := np.child("config")
	nb := bgp.Neighbor{Enabled: true, Description: n.GetDescription()}
	addr, err := netip.ParseAddr(n.GetNeighborAddress())
	if err != nil {
		t.add(np.child("neighbor-address"), fmt.Sprintf("invalid neighbor address: %v", err))
		return nb, false
	}
	nb.Address = addr
	if t.neighbors == nil {
		t.neighbors = map[netip.Addr]*neighborPaths{}
	}
	t.neighbors[addr.Unmap()] = &neighborPaths{entry: np}

	// The peer group, if any: the neighbor's own settings override it.
	var pg *oc.NetworkInstance_Protocol_Bgp_PeerGroup
	if n.PeerGroup != nil {
		if pg = b.PeerGroup[*n.PeerGroup]; pg == nil {
			t.add(cfg.child("peer-group"), fmt.Sprintf("peer group %q is not configured", *n.PeerGroup))
			return nb, false
		}
	}

	pgCfg := np[:len(np)-2].child("peer-groups").entry("peer-group", []kv{{"peer-group-name", n.GetPeerGroup()}}).child("config")
	// The speaker's validation refuses peer-as 0 (bgp.FieldPeerAS).
	switch {
	case n.PeerAs != nil:
		nb.PeerAS = *n.PeerAs
	case pg != nil && pg.PeerAs != nil:
		nb.PeerAS = *pg.PeerAs
		t.leafOf(addr, bgp.FieldPeerAS, pgCfg.child("peer-as"))
	default:
		t.add(cfg.child("peer-as"), "neighbor has no peer-as (nor a peer-group giving one)")
	}
	switch {
	case n.LocalAs != nil && *n.LocalAs == 0:
		t.add(cfg.child("local-as"), "local-as 0 is reserved (RFC 7607); leave local-as out to use the global AS")
	case n.LocalAs != nil:
		nb.LocalAS = *n.LocalAs
	case pg != nil && pg.LocalAs != nil && *pg.LocalAs == 0:
		t.add(pgCfg.child("local-as"), "local-as 0 is reserved (RFC 7607); leave local-as out to use the global AS")
	default:
		nb.LocalAS = pg.GetLocalAs()
	}
	if n.Enabled != nil {
		nb.Enabled = *n.Enabled
	}
	nb.AuthPassword = n.GetAuthPassword()
	if n.AuthPassword == nil {
		nb.AuthPassword = pg.GetAuthPassword()
	}
	var pgGR *oc.NetworkInstance_Protocol_Bgp_PeerGroup_GracefulRestart
	if pg != nil {
		pgGR = pg.GracefulRestart
	}
	nb.GracefulRestart = gracefulRestart(c.GracefulRestart, n.GracefulRestart, pgGR)
	t.applyPolicy(n, pg, np, c, &nb)
	nb.FilterMembership = filterMembership(n, pg)

	// Transport, timers: each leaf from the neighbor or else the group.
	var ntr oc.NetworkInstance_Protocol_Bgp_Neighbor_Transport
	var gtr oc.NetworkInstance_Protocol_Bgp_PeerGroup_Transport
	var nt oc.NetworkInstance_Protocol_Bgp_Neighbor_Timers
	var gt oc.NetworkInstance_Protocol_Bgp_PeerGroup_Timers
	if n.Transport != nil {
		ntr = *n.Transport
	}
	if n.Timers != nil {
		nt = *n.Timers
	}
	if pg != nil && pg.Transport != nil {
		gtr = *pg.Transport
	}
	if pg != nil && pg.Timers != nil {
		gt = *pg.Timers
	}
	local := ntr.LocalAddress
	if local == nil {
		local = gtr.LocalAddress
	}
	if local != nil {
		// The speaker's validation checks its family against the
		// neighbor's (reported at the neighbor's leaf, as before); an
		// interface name makes the neighbor unnumbered (unnumbered.go).
		if la, err := netip.ParseAddr(*local); err == nil {
			nb.LocalAddress = la
		} else {
			t.localInterface(&nb, *local, np.child("transport").child("config").child("local-address"))
		}
	}
	if ntr.PassiveMode != nil {
		nb.Passive = *ntr.PassiveMode
	} else {
		nb.Passive = gtr.GetPassiveMode()
	}
	t.timers(np, pgCfg, n.PeerGroup != nil, nt, gt, &nb)

	// Address families: the group's list, entries overridden by the
	// neighbor's. None configured anywhere means the neighbor address's
	// family.
	type afSrc struct {
		on bool
		p  path
	}
	afs := map[oc.E_BgpTypes_AFI_SAFI_TYPE]afSrc{}
	if pg != nil {
		pgp := np[:len(np)-2].child("peer-groups").entry("peer-group", []kv{{"peer-group-name", pg.GetPeerGroupName()}})
		for name, af := range pg.AfiSafi {
			afs[name] = afSrc{af.GetEnabled(), afiSafiEntry(pgp, name).child("config").child("enabled")}
		}
	}
	for name, af := range n.AfiSafi {
		if af.ApplyPolicy != nil {
			t.add(afiSafiEntry(np, name).child("apply-policy"), "per-family apply-policy is not supported: apply it to the neighbor")
		}
		if _, ok := families[name]; !ok {
			t.add(afiSafiEntry(np, name), "address family not supported by switchd (IPV4_UNICAST and IPV6_UNICAST are)")
			continue
		}
		afs[name] = afSrc{af.GetEnabled(), afiSafiEntry(np, name).child("config").child("enabled")}
	}
	names := make([]oc.E_BgpTypes_AFI_SAFI_TYPE, 0, len(afs))
	for name := range afs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return families[names[i]] < families[names[j]] })
	for _, name := range names {
		a := afs[name]
		f, ok := families[name]
		if !ok || !a.on {
			continue
		}
		if !enabled[f] {
			t.add(a.p, fmt.Sprintf("%s is enabled for this neighbor but not in the global afi-safis of BGP", enumName(name)))
			continue
		}
		if n.AfiSafi[name] == nil {
			// The speaker refuses some families on some sessions; it
			// reports the neighbor's entry, so say where this one came from.
			t.noteOf(addr, bgp.AfiSafiField(f), " (the family is enabled by peer group "+pg.GetPeerGroupName()+")")
		}
		nb.Families = append(nb.Families, f)
	}
	switch {
	case len(afs) > 0 && len(nb.Families) == 0 && len(t.list) == before:
		t.add(np.child("afi-safis"), "no address family is enabled for this neighbor")
	case len(afs) == 0:
		f := bgp.IPv4Unicast
		if addr.Is6() {
			f = bgp.IPv6Unicast
		}
		if !enabled[f] {
			t.add(np.child("afi-safis"), fmt.Sprintf("no afi-safis configured, so the neighbor would use %v, which is not enabled in the global afi-safis of BGP", f))
		}
	}
	t.neighborLimits(n, pg, np, &nb)
	return nb, len(t.list) == before
}

// neighborLimits translates ebgp-multihop and the families' prefix-limit
// of the neighbor, each leaf from the neighbor or else its peer group pg
// (nil if none), into nb.
func (t *translator) neighborLimits(n *oc.NetworkInstance_Protocol_Bgp_Neighbor, pg *oc.NetworkInstance_Protocol_Bgp_PeerGroup, np path, nb *bgp.Neighbor) {
	gp := np
	if pg != nil {
		gp = np[:len(np)-2].child("peer-groups").entry("peer-group", []kv{{"peer-group-name", pg.GetPeerGroupName()}})
	}
	// leaf is a leaf's value and the config container it is in.
	type leaf[T any] struct {
		v *T
		p path
	}

	// ebgp-multihop: each leaf from the neighbor, else the group.
	var enabled *bool
	ttl := leaf[uint8]{p: np.child("ebgp-multihop").child("config")}
	if m := pg.GetEbgpMultihop(); m != nil {
		enabled = m.Enabled
		if m.MultihopTtl != nil {
			ttl = leaf[uint8]{m.MultihopTtl, gp.child("ebgp-multihop").child("config")}
		}
	}
	if m := n.GetEbgpMultihop(); m != nil {
		if m.Enabled != nil {
			enabled = m.Enabled
		}
		if m.MultihopTtl != nil {
			ttl = leaf[uint8]{m.MultihopTtl, np.child("ebgp-multihop").child("config")}
		}
	}
	on := enabled != nil && *enabled
	switch {
	case !on && ttl.v != nil:
		t.add(ttl.p.child("multihop-ttl"), "multihop-ttl is set but ebgp-multihop is not enabled")
	case !on:
	case ttl.v == nil:
		nb.MultihopTTL = 255 // enabled without a TTL: any number of hops
	case *ttl.v == 0:
		t.add(ttl.p.child("multihop-ttl"), "multihop-ttl must be 1 to 255")
	default:
		nb.MultihopTTL = *ttl.v
	}

	for _, name := range []oc.E_BgpTypes_AFI_SAFI_TYPE{oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST, oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST} {
		var max leaf[uint32]
		var prevent leaf[bool]
		var warn leaf[uint8]
		// The group first, then the neighbor's leaves over it.
		for _, src := range []limitSrc{groupLimit(pg, name, gp), neighborLimit(n, name, np)} {
			if src.max != nil {
				max = leaf[uint32]{src.max, src.p}
			}
			if src.prevent != nil {
				prevent = leaf[bool]{src.prevent, src.p}
			}
			if src.warn != nil {
				warn = leaf[uint8]{src.warn, src.p}
			}
		}
		if max.v == nil && prevent.v == nil && warn.v == nil {
			continue
		}
		f := families[name]
		switch {
		case prevent.v != nil && *prevent.v:
			t.add(prevent.p.child("prevent-teardown"), "prevent-teardown is not supported: switchd (GoBGP) cannot keep the session and ignore prefixes beyond the limit; at max-prefixes it tears the session down")
		case !slices.Contains(nb.Families, f):
			// A group's limit for a family this member does not
			// use, or a limit on a disabled family: nothing to limit.
		default:
			// The speaker checks the values; its errors go to the
			// container that gave each leaf (for a missing
			// max-prefixes, the one where another leaf was given).
			pl := bgp.PrefixLimit{Family: f}
			mp := max.p
			if max.v != nil {
				pl.MaxPrefixes = *max.v
			} else if mp = prevent.p; mp == nil {
				mp = warn.p
			}
			t.leafOf(nb.Address, bgp.PrefixLimitField(f, bgp.FieldMaxPrefixes), mp.child("max-prefixes"))
			if warn.v != nil {
				pl.WarningThresholdPct = *warn.v
				t.leafOf(nb.Address, bgp.PrefixLimitField(f, bgp.FieldWarningThreshold), warn.p.child("warning-threshold-pct"))
			}
			nb.PrefixLimits = append(nb.PrefixLimits, pl)
		}
	}
}

// limitSrc is one prefix-limit container's leaves and config path.
type limitSrc struct {
	p       path
	max     *uint32
	prevent *bool
	warn    *uint8
}

func limitPath(base path, name oc.E_BgpTypes_AFI_SAFI_TYPE) path {
	return afiSafiEntry(base, name).child(strings.ToLower(strings.ReplaceAll(enumName(name), "_", "-"))).child("prefix-limit").child("config")
}

func neighborLimit(n *oc.NetworkInstance_Protocol_Bgp_Neighbor, name oc.E_BgpTypes_AFI_SAFI_TYPE, np path) limitSrc {
	af := n.AfiSafi[name]
	src := limitSrc{p: limitPath(np, name)}
	if pl := af.GetIpv4Unicast().GetPrefixLimit(); name == oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST && pl != nil {
		src.max, src.prevent, src.warn = pl.MaxPrefixes, pl.PreventTeardown, pl.WarningThresholdPct
	}
	if pl := af.GetIpv6Unicast().GetPrefixLimit(); name == oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST && pl != nil {
		src.max, src.prevent, src.warn = pl.MaxPrefixes, pl.PreventTeardown, pl.WarningThresholdPct
	}
	return src
}

func groupLimit(pg *oc.NetworkInstance_Protocol_Bgp_PeerGroup, name oc.E_BgpTypes_AFI_SAFI_TYPE, gp path) limitSrc {
	src := limitSrc{p: limitPath(gp, name)}
	if pg == nil {
		return src
	}
	af := pg.AfiSafi[name]
	if pl := af.GetIpv4Unicast().GetPrefixLimit(); name == oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST && pl != nil {
		src.max, src.prevent, src.warn = pl.MaxPrefixes, pl.PreventTeardown, pl.WarningThresholdPct
	}
	if pl := af.GetIpv6Unicast().GetPrefixLimit(); name == oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST && pl != nil {
		src.max, src.prevent, src.warn = pl.MaxPrefixes, pl.PreventTeardown, pl.WarningThresholdPct
	}
	return src
}

// neighborPaths locates one neighbor's leaves: its list entry, and the
// leaves a value came from when that is not the neighbor's own (its peer
// group's), keyed by bgp.FieldError.Field.
type neighborPaths struct {
	entry path
	from  map[string]path
	note  map[string]string // added to the reason of an error at a field
}

// noteFor is the note for errors at field, if any.
func (np *neighborPaths) noteFor(field string) string {
	if np == nil {
		return ""
	}
	return np.note[field]
}

// noteOf adds note to the reason of any error the speaker reports at the
// neighbor's field.
func (t *translator) noteOf(addr netip.Addr, field, note string) {
	if np := t.neighbors[addr.Unmap()]; np != nil {
		if np.note == nil {
			np.note = map[string]string{}
		}
		np.note[field] = note
	}
}

// leafOf records that the neighbor's field got its value from the leaf at p.
func (t *translator) leafOf(addr netip.Addr, field string, p path) {
	np := t.neighbors[addr.Unmap()]
	if np == nil {
		return
	}
	if np.from == nil {
		np.from = map[string]path{}
	}
	np.from[field] = p
}

// fieldPath is the OpenConfig path of the leaf a bgp.FieldError concerns,
// or nil for a neighbor this translation did not produce.
func (t *translator) fieldPath(fe *bgp.FieldError) path {
	base := t.bgpPath.child("global")
	if fe.Neighbor.IsValid() {
		np := t.neighborPaths(fe.Neighbor)
		if np == nil {
			return nil
		}
		if p, ok := np.from[fe.Field]; ok {
			return p
		}
		base = np.entry
	}
	if fe.Field == "" {
		return base
	}
	for _, name := range strings.Split(fe.Field, "/") {
		// A list entry is written name[key=value] (one key is all the
		// speaker's fields need).
		if list, key, ok := strings.Cut(name, "["); ok {
			k, v, _ := strings.Cut(strings.TrimSuffix(key, "]"), "=")
			base = base.entry(list, []kv{{k, v}})
			continue
		}
		base = base.child(name)
	}
	return base
}

// bgpErrors reports what the speaker's validation (bgp.Validate) found in
// the translated config. A field error goes to the leaf's path, unless the
// translation already reported a problem there (a missing AS is one
// problem, not two). Anything else goes to the BGP protocol, and only if
// the translation found nothing: it is then what the checks here missed.
func (t *translator) bgpErrors(err error) {
	if err == nil {
		return
	}
	clean := len(t.list) == 0
	seen := make(map[string]bool, len(t.list))
	for _, e := range t.list {
		seen[e.Path] = true
	}
	fields, others := bgp.SplitErrors(err)
	for _, fe := range fields {
		p := t.fieldPath(fe)
		if p == nil {
			others = append(others, fe)
			continue
		}
		if !seen[p.String()] {
			t.add(p, fe.Reason+t.neighborPaths(fe.Neighbor).noteFor(fe.Field))
		}
	}
	if clean {
		for _, o := range others {
			t.add(t.bgpPath, o.Error())
		}
	}
}

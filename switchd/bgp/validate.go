package bgp

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// global is the part of the configuration GoBGP only takes in StartBgp.
type global struct {
	ASN        uint32
	RouterID   netip.Addr
	ListenPort int32 // normalised: 179 for 0, -1 for any negative value
	Listen     []netip.Addr
	// Multipath is here because GoBGP reads UseMultiplePaths only in
	// StartBgp.
	Multipath bool
}

func (g global) equal(o global) bool {
	return g.ASN == o.ASN && g.RouterID == o.RouterID && g.ListenPort == o.ListenPort &&
		g.Multipath == o.Multipath && slices.Equal(g.Listen, o.Listen)
}

// desired is a validated, normalised Config.
type desired struct {
	global    global
	multipath Multipath
	neighbors map[netip.Addr]Neighbor
	originate map[netip.Prefix]struct{}
	// syncTimeout is Config.SyncTimeout with its default applied.
	syncTimeout time.Duration
	// policy is the GoBGP routing policy the neighbors' chains compile to.
	policy *compiledPolicy
	// sets and policies are what policy was compiled from, to compile it
	// again for resolved unnumbered neighbors (unnumbered.go).
	sets     map[string]PrefixSet
	policies map[string]Policy
	// pending are the unnumbered neighbors resolveUnnumbered left out
	// until discovery has their addresses, by their config key.
	pending map[netip.Addr]Neighbor
}

// ownAddrs are the addresses the configuration says are ours: a learned
// path with one of them as next hop must not be programmed.
func (d *desired) ownAddrs() []netip.Addr {
	own := []netip.Addr{d.global.RouterID}
	own = append(own, d.global.Listen...)
	for _, n := range d.neighbors {
		if n.LocalAddress.IsValid() {
			own = append(own, n.LocalAddress)
		}
	}
	return own
}

const (
	minHoldTime = 3 * time.Second // RFC 4271 4.2: zero or at least three seconds
	// defaultHoldTime is what GoBGP runs when Timers.HoldTime is zero.
	defaultHoldTime = 90 * time.Second
)

// validate checks the whole Config and returns its normalised form, or an
// error naming every problem found. It touches nothing.
func validate(c Config) (*desired, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	badField := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	d := &desired{
		multipath: c.Multipath,
		neighbors: make(map[netip.Addr]Neighbor, len(c.Neighbors)),
		originate: make(map[netip.Prefix]struct{}, len(c.Originate)),
	}
	g := &d.global
	g.ASN = c.ASN
	if c.ASN == 0 {
		badField("config/as", "asn: must not be 0")
	}
	g.RouterID = c.RouterID.Unmap()
	if !g.RouterID.Is4() || g.RouterID.IsUnspecified() {
		badField("config/router-id", "router-id %v: must be a non-zero IPv4 address", c.RouterID)
	}
	switch {
	case c.ListenPort == 0:
		g.ListenPort = 179
	case c.ListenPort < 0:
		g.ListenPort = -1
	case c.ListenPort > 65535:
		bad("listen-port %d: out of range", c.ListenPort)
	default:
		g.ListenPort = c.ListenPort
	}
	for _, a := range c.ListenAddresses {
		a = a.Unmap()
		if !a.IsValid() || a.Zone() != "" {
			bad("listen-address %v: must be an IP address without zone", a)
			continue
		}
		if slices.Contains(g.Listen, a) {
			bad("listen-address %v: listed twice", a)
			continue
		}
		g.Listen = append(g.Listen, a)
	}
	slices.SortFunc(g.Listen, netip.Addr.Compare)
	g.Multipath = c.Multipath.Enabled
	if !c.Multipath.Enabled {
		d.multipath = Multipath{}
	}

	gr, err := validateGR(c.GracefulRestart, netip.Addr{})
	if err != nil {
		errs = append(errs, fmt.Errorf("graceful-restart: %w", err))
	}
	d.syncTimeout = c.SyncTimeout
	switch {
	case c.SyncTimeout < 0:
		bad("sync-timeout %v: must not be negative", c.SyncTimeout)
	case c.SyncTimeout == 0 && gr.Enabled:
		d.syncTimeout = gr.RestartTime
	case c.SyncTimeout == 0:
		d.syncTimeout = DefaultSyncTimeout
	}
	sets, policies, err := validatePolicies(c.PrefixSets, c.Policies)
	if err != nil {
		errs = append(errs, err)
	}

	for i, n := range c.Neighbors {
		n, err := validateNeighbor(n, gr, policies)
		if err != nil {
			errs = append(errs, fmt.Errorf("neighbor %d (%v): %w", i, n.Address, err))
			continue
		}
		if _, dup := d.neighbors[n.Address]; dup {
			bad("neighbor %v: configured twice", n.Address)
			continue
		}
		if local := cmp.Or(n.LocalAS, c.ASN); n.MultihopTTL != 0 && n.PeerAS == local {
			// GoBGP sets no TTL on iBGP sessions: the setting would be ignored.
			errs = append(errs, fmt.Errorf("neighbor %v: %w", n.Address, &FieldError{Neighbor: n.Address, Field: "ebgp-multihop/config/enabled",
				Reason: fmt.Sprintf("ebgp-multihop: an iBGP neighbor (peer-as %d is the local AS) is not limited to one hop", n.PeerAS)}))
			continue
		}
		d.neighbors[n.Address] = n
	}

	for _, p := range c.Originate {
		if err := checkOriginPrefix(p); err != nil {
			bad("originate %v: %v", p, err)
			continue
		}
		if _, dup := d.originate[p]; dup {
			bad("originate %v: listed twice", p)
		}
		d.originate[p] = struct{}{}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid bgp config: %w", err)
	}
	d.sets, d.policies = sets, policies
	d.policy = compilePolicy(sets, policies, d.neighbors)
	d.policy.guardLoops(c.ASN, d.neighbors) // loop.go: GoBGP keeps paths a looped update replaces
	return d, nil
}

// validateGR checks a graceful restart configuration, the global one
// (neighbor invalid) or a neighbor's, and fills in the default timers.
func validateGR(g GracefulRestart, neighbor netip.Addr) (GracefulRestart, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Neighbor: neighbor, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	for _, tm := range []struct {
		name, field string
		d           *time.Duration
		def         time.Duration
	}{
		{"restart-time", FieldRestartTime, &g.RestartTime, DefaultRestartTime},
		{"stale-routes-time", FieldStaleRoutesTime, &g.StaleRoutesTime, DefaultStaleRoutesTime},
	} {
		if *tm.d < 0 || *tm.d%time.Second != 0 {
			bad(tm.field, "%s %v: must be a non-negative whole number of seconds", tm.name, *tm.d)
		}
		if *tm.d == 0 {
			*tm.d = tm.def
		}
	}
	if g.RestartTime > maxRestartTime {
		bad(FieldRestartTime, "restart-time %v: at most %ds (12 bits in the capability)", g.RestartTime, maxRestartTime/time.Second)
	}
	if g.StaleRoutesTime > 65535*time.Second {
		bad(FieldStaleRoutesTime, "stale-routes-time %v: at most 65535s", g.StaleRoutesTime)
	}
	if !g.Enabled {
		g = GracefulRestart{}
	}
	return g, errors.Join(errs...)
}

func validateNeighbor(n Neighbor, globalGR GracefulRestart, policies map[string]Policy) (Neighbor, error) {
	var errs []error
	n.Address = n.Address.Unmap()
	field, reason := normalizeUnnumbered(&n)
	// bad reports a rule the field (schema path under the neighbor's
	// entry, "" for the neighbor as a whole) breaks.
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Neighbor: n.Address, Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	if reason != "" {
		bad(field, "%s", reason)
	}
	if !n.Address.IsValid() || n.Address.IsUnspecified() {
		bad("neighbor-address", "address: must be a unicast IP address")
	}
	if n.PeerAS == 0 {
		bad(FieldPeerAS, "peer-as 0 is reserved (RFC 7607)")
	}
	if n.LocalAddress.IsValid() {
		n.LocalAddress = n.LocalAddress.Unmap()
		if n.Address.IsValid() && n.LocalAddress.Is4() != n.Address.Is4() {
			bad("transport/config/local-address", "local-address %v: not of the neighbor's address family", n.LocalAddress)
		}
	}
	var fams []Family
	for _, f := range n.Families {
		if f != IPv4Unicast && f != IPv6Unicast {
			bad("afi-safis", "family %d: unsupported (want ipv4-unicast or ipv6-unicast)", int(f))
			continue
		}
		if slices.Contains(fams, f) {
			bad("afi-safis", "family %v: listed twice", f)
			continue
		}
		// GoBGP would send the routes with a next hop of the session's
		// family without negotiating RFC 8950, and the peer drops them.
		// Unnumbered sessions do negotiate it (unnumbered.go).
		if n.Address.IsValid() && (f == IPv4Unicast) != n.Address.Is4() && !(f == IPv4Unicast && unnumbered(n)) {
			bad(AfiSafiField(f), "%s over an %s session needs RFC 8950 extended next hop, not supported by switchd on a numbered session: configure a neighbor with an address of that family for it, or an unnumbered neighbor", f.identity(), addrFamily(n.Address))
			continue
		}
		fams = append(fams, f)
	}
	if len(n.Families) == 0 && n.Address.IsValid() {
		fams = []Family{IPv4Unicast}
		if n.Address.Is6() {
			fams = []Family{IPv6Unicast}
		}
	}
	slices.Sort(fams)
	n.Families = fams

	var limits []PrefixLimit
	for _, pl := range n.PrefixLimits {
		switch {
		case !slices.Contains(fams, pl.Family):
			bad("afi-safis", "prefix-limit of %v: family not enabled for this neighbor", pl.Family)
		case slices.ContainsFunc(limits, func(o PrefixLimit) bool { return o.Family == pl.Family }):
			bad("afi-safis", "prefix-limit of %v: given twice", pl.Family)
		case pl.MaxPrefixes == 0:
			// GoBGP reads 0 as "no limit".
			bad(PrefixLimitField(pl.Family, FieldMaxPrefixes), "prefix-limit needs max-prefixes of at least 1 (to accept nothing, use an import policy)")
		case pl.WarningThresholdPct > 100:
			bad(PrefixLimitField(pl.Family, FieldWarningThreshold), "warning-threshold-pct %d: at most 100", pl.WarningThresholdPct)
		default:
			limits = append(limits, pl)
		}
	}
	slices.SortFunc(limits, func(a, b PrefixLimit) int { return int(a.Family) - int(b.Family) })
	n.PrefixLimits = limits

	t := n.Timers
	for _, tm := range []struct {
		name string
		d    time.Duration
	}{
		{"connect-retry", t.ConnectRetry},
		{"hold-time", t.HoldTime},
		{"keepalive-interval", t.Keepalive},
		{"minimum-advertisement-interval", t.MinAdvertisementInterval},
	} {
		// GoBGP's API carries timers in whole seconds.
		if tm.d < 0 || tm.d%time.Second != 0 {
			bad("timers/config/"+tm.name, "%s %v: must be a non-negative whole number of seconds", tm.name, tm.d)
		}
	}
	if t.HoldTime != 0 && t.HoldTime < minHoldTime {
		bad(FieldHoldTime, "hold-time %v: must be at least %v (RFC 4271 also allows 0, which switchd does not support)", t.HoldTime, minHoldTime)
	}
	// A zero keepalive or hold time is GoBGP's default: hold 90 s and
	// keepalive a third of the hold time.
	if hold := cmp.Or(t.HoldTime, defaultHoldTime); t.Keepalive != 0 && t.Keepalive >= hold {
		bad(FieldKeepalive, "keepalive-interval %v must be shorter than hold-time %v", t.Keepalive, hold)
	}

	// Normalised: GracefulRestart is always set, to the effective values.
	gr := globalGR
	if n.GracefulRestart != nil {
		g, err := validateGR(*n.GracefulRestart, n.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("graceful-restart: %w", err))
		}
		gr = g
	}
	n.GracefulRestart = &gr

	for _, ch := range []struct {
		dir string
		c   PolicyChain
	}{{"import", n.Import}, {"export", n.Export}} {
		for _, name := range ch.c.Policies {
			if _, ok := policies[name]; !ok {
				bad("apply-policy/config/"+ch.dir+"-policy", "%s-policy %q: no such policy", ch.dir, name)
			}
		}
		if ch.c.Default < ResultNone || ch.c.Default > Reject {
			bad("apply-policy/config/default-"+ch.dir+"-policy", "default-%s-policy %d: unknown result", ch.dir, int(ch.c.Default))
		}
	}
	return n, errors.Join(errs...)
}

func addrFamily(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// neighborEqual reports whether two normalised neighbors are configured
// alike.
func neighborEqual(a, b Neighbor) bool {
	return a.Address == b.Address && a.PeerAS == b.PeerAS && a.LocalAS == b.LocalAS &&
		a.LocalAddress == b.LocalAddress && a.Description == b.Description &&
		a.Enabled == b.Enabled && a.Passive == b.Passive && a.AuthPassword == b.AuthPassword &&
		a.Timers == b.Timers && slices.Equal(a.Families, b.Families) &&
		*a.GracefulRestart == *b.GracefulRestart &&
		a.MultihopTTL == b.MultihopTTL && slices.Equal(a.PrefixLimits, b.PrefixLimits) &&
		a.Interface == b.Interface
}

// Validate checks a Config as Apply would, without a speaker.
func Validate(c Config) error {
	_, err := validate(c)
	return err
}

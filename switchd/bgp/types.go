// Package bgp embeds GoBGP as switchd's BGP speaker. GoBGP's types stay
// inside this package; the daemon speaks to it in the switchd types below.
//
// The GoBGP is v4 (v4.8.0), not the v3 switchd started on: v4's watch
// hands over native paths (apiutil.Path, netip prefixes, decoded
// attributes) where v3 marshalled every path to protobuf for switchd to
// decode again, which was most of the speaker's cost at 100k prefixes;
// AddPath and DeletePath take native paths too; v4 carries the BFD codec
// (pkg/packet/bfd) switchd/bfd uses; and v4 is where upstream work lands
// (v3 gets fixes only). GoBGP's own BFD (v4.7+) stays off: switchd/bfd
// runs BFD (see bfdgate.go).
package bgp

import (
	"net/netip"
	"time"
)

// Family is an address family / subsequent address family pair.
type Family int

const (
	IPv4Unicast Family = iota + 1
	IPv6Unicast
)

func (f Family) String() string {
	switch f {
	case IPv4Unicast:
		return "ipv4-unicast"
	case IPv6Unicast:
		return "ipv6-unicast"
	}
	return "unknown"
}

// Config is the whole desired configuration of the speaker. Apply compares
// it with the running one and changes only what differs.
type Config struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the TCP port to accept sessions on; 0 means 179 and a
	// negative value means do not listen (outgoing sessions only).
	ListenPort int32
	// ListenAddresses restricts the listener; empty means all addresses.
	ListenAddresses []netip.Addr
	Multipath       Multipath
	Neighbors       []Neighbor
	// Originate lists the prefixes this speaker announces itself.
	Originate []netip.Prefix
	// GracefulRestart (RFC 4724) applies to every neighbor that does not
	// override it.
	GracefulRestart GracefulRestart
	// SyncTimeout bounds how long Synced waits for the neighbors' initial
	// updates (sync.go). Zero means the graceful restart time when
	// graceful restart is enabled, else DefaultSyncTimeout.
	SyncTimeout time.Duration
	// PrefixSets and Policies are what neighbors' Import and Export
	// chains refer to, by name.
	PrefixSets []PrefixSet
	Policies   []Policy
}

// DefaultSyncTimeout bounds the wait for Synced without graceful restart
// configured. It matters only for a neighbor that is up but never goes
// quiet: one that is not up is waited for 10 s only (sync.go).
const DefaultSyncTimeout = 120 * time.Second

// GracefulRestart configures RFC 4724 graceful restart.
//
// Helper role (always, when Enabled): when a neighbor that announced the
// capability drops the session without a NOTIFICATION (its process died),
// its routes are kept, marked stale, until it is back and has sent
// End-of-RIB (then the stale routes it did not announce again are
// withdrawn) or until the restart time it announced has passed.
//
// Restarting role (unless HelperOnly): the speaker announces the
// capability with the forwarding-state bit for its families, and after
// SetRestarting it sets the restart-state bit and holds back its own
// UPDATEs until Synced.
type GracefulRestart struct {
	Enabled    bool
	HelperOnly bool
	// RestartTime is announced to peers: how long they keep our routes
	// after our session drops. Whole seconds, at most 4095; zero means
	// DefaultRestartTime.
	RestartTime time.Duration
	// StaleRoutesTime bounds how long the stale routes of a neighbor that
	// came back are kept while it has not sent End-of-RIB; after it the
	// session is reset, which removes them. Zero means DefaultStaleRoutesTime.
	StaleRoutesTime time.Duration
}

// Defaults of GracefulRestart's timers.
const (
	DefaultRestartTime     = 120 * time.Second
	DefaultStaleRoutesTime = 360 * time.Second
	maxRestartTime         = 4095 * time.Second // 12 bits in the capability
)

// PrefixSet is a named list of prefix ranges (OpenConfig prefix-set).
type PrefixSet struct {
	Name     string
	Prefixes []PrefixRange
}

// PrefixRange matches a route whose prefix lies inside Prefix and whose
// length is between MinLen and MaxLen. MinLen == MaxLen == 0 means exactly
// Prefix's length.
type PrefixRange struct {
	Prefix         netip.Prefix
	MinLen, MaxLen int
}

// PolicyResult is what a statement or a chain's default does with a route.
type PolicyResult int

const (
	// ResultNone: a statement without a result goes on to the next one; a
	// chain default of ResultNone accepts.
	ResultNone PolicyResult = iota
	Accept
	Reject
)

func (r PolicyResult) String() string {
	switch r {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	}
	return "none"
}

// Policy is a named, ordered list of statements (OpenConfig
// policy-definition). The first statement that matches and has a result
// decides.
type Policy struct {
	Name       string
	Statements []Statement
}

// Statement matches routes by prefix set (empty PrefixSet: every route;
// Invert: routes not in the set) and gives a result.
type Statement struct {
	Name      string
	PrefixSet string
	Invert    bool
	Result    PolicyResult
}

// PolicyChain is the policies applied to one neighbor in one direction,
// evaluated in order, and the result for a route none of them decided.
// The zero value accepts everything.
type PolicyChain struct {
	Policies []string
	Default  PolicyResult
}

// Multipath configures ECMP over several BGP paths.
type Multipath struct {
	Enabled bool
	// MultipleAS allows paths whose AS_PATHs differ but have equal length
	// (as-path multipath-relax), as leaf-spine fabrics need.
	MultipleAS bool
	MaxPaths   uint32 // 0: no limit
}

// Neighbor is one configured BGP peer.
type Neighbor struct {
	Address      netip.Addr
	PeerAS       uint32
	LocalAS      uint32     // 0: the global ASN
	LocalAddress netip.Addr // zero: chosen by the kernel
	Description  string
	Enabled      bool
	Passive      bool
	AuthPassword string // TCP-MD5
	Timers       Timers
	Families     []Family // empty: the family of Address
	// GracefulRestart overrides Config.GracefulRestart when not nil.
	GracefulRestart *GracefulRestart
	// Import filters what is learned from the neighbor, Export what is
	// announced to it.
	Import, Export PolicyChain
	// FilterMembership keeps group membership routes (membership.go) off
	// the session both ways, before Import and Export: for peers outside
	// the fabric, which have no use for them and must not inject members.
	FilterMembership bool
	// MultihopTTL, for an eBGP neighbor, is the IP TTL of the session's
	// packets, so that it runs over that many hops (ebgp-multihop). Zero
	// means directly connected: TTL 1, as RFC 4271 eBGP expects.
	MultihopTTL uint8
	// PrefixLimits bound the prefixes accepted from the neighbor, per
	// family (at most one each).
	PrefixLimits []PrefixLimit
	// Interface makes the neighbor unnumbered (unnumbered.go): the
	// session runs over this point-to-point interface between IPv6
	// link-local addresses, and carries IPv4 routes with IPv6 next hops
	// (RFC 8950). Address is then the peer's link-local address, or
	// invalid to have it discovered on the interface.
	Interface string
}

// PrefixLimit is OpenConfig's prefix-limit of one family: when the
// neighbor has sent more than MaxPrefixes prefixes the session is torn
// down with a NOTIFICATION (Cease, Maximum Number of Prefixes Reached) and
// stays down until the neighbor's configuration changes or switchd
// restarts. Only the teardown is implemented (GoBGP cannot keep a session
// and ignore prefixes beyond the limit), so there is no prevent-teardown.
type PrefixLimit struct {
	Family      Family
	MaxPrefixes uint32
	// WarningThresholdPct logs a warning once the neighbor has sent that
	// percentage of MaxPrefixes; zero means no warning.
	WarningThresholdPct uint8
}

// MessageCounts count a neighbor's BGP messages by type and direction.
type MessageCounts struct {
	UpdatesReceived, UpdatesSent             uint64
	NotificationsReceived, NotificationsSent uint64
}

// Timers are the per-neighbor session timers; zero values take GoBGP's
// defaults (connect-retry 120 s, hold 90 s, keepalive 30 s).
type Timers struct {
	ConnectRetry time.Duration
	HoldTime     time.Duration
	Keepalive    time.Duration
	// MinAdvertisementInterval is handed to GoBGP, which (4.8 as 3.37)
	// only stores it: it has no effect.
	MinAdvertisementInterval time.Duration
}

// Route is a prefix with every best (ECMP) path learned from peers. An empty
// NextHops means the prefix is no longer reachable over BGP.
type Route struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
	// Paths are the selected paths behind NextHops, each with its
	// communities, sorted by next hop; two paths share a next hop only if
	// their communities differ. Shared like NextHops: not to be modified.
	Paths []Path
}

// Path is one selected path of a learned route.
type Path struct {
	NextHop netip.Addr
	// Communities is nil for a path without any. It is interned: paths
	// with equal communities share one *Communities, so pointers compare
	// as the lists do.
	Communities *Communities
}

// Communities are the community attributes of a path, as received. Shared:
// must not be modified.
type Communities struct {
	Standard []uint32 // RFC 1997: AS<<16 | value
	Large    []LargeCommunity
	// Extended are RFC 4360 communities, 8 bytes each as on the wire.
	Extended []uint64
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	Global, Local1, Local2 uint32
}

// SessionState is the BGP FSM state of a neighbor, named as in OpenConfig.
type SessionState string

const (
	StateIdle        SessionState = "IDLE"
	StateConnect     SessionState = "CONNECT"
	StateActive      SessionState = "ACTIVE"
	StateOpenSent    SessionState = "OPENSENT"
	StateOpenConfirm SessionState = "OPENCONFIRM"
	StateEstablished SessionState = "ESTABLISHED"
)

// NeighborState is what the speaker reports about one neighbor.
type NeighborState struct {
	Address          netip.Addr
	PeerAS           uint32
	State            SessionState
	EstablishedSince time.Time // zero unless established
	// EstablishedTransitions counts the sessions that reached Established
	// since the neighbor was configured; LastEstablished is the latest
	// (zero if none).
	EstablishedTransitions uint64
	LastEstablished        time.Time
	PrefixesReceived       map[Family]uint64
	PrefixesAccepted       map[Family]uint64
	PrefixesSent           map[Family]uint64
	LastError              string
	NegotiatedFamilies     []Family
	// Messages are GoBGP's UPDATE and NOTIFICATION counts, from the same
	// ListPeer as the prefix counts (so they lag as those do).
	Messages MessageCounts
	// Removed, in DrainNeighbors only: the neighbor is no longer
	// configured; this is its last report.
	Removed bool
}

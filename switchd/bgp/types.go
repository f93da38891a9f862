// Package bgp embeds GoBGP as switchd's BGP speaker. GoBGP's types stay
// inside this package; the daemon speaks to it in the switchd types below.
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
}

// Timers are the per-neighbor session timers; zero values take GoBGP's
// defaults (connect-retry 120 s, hold 90 s, keepalive 30 s).
type Timers struct {
	ConnectRetry time.Duration
	HoldTime     time.Duration
	Keepalive    time.Duration
	// MinAdvertisementInterval batches outgoing UPDATEs; zero means GoBGP's
	// default.
	MinAdvertisementInterval time.Duration
}

// Route is a prefix with every best (ECMP) path learned from peers. An empty
// NextHops means the prefix is no longer reachable over BGP.
type Route struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
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
	Address            netip.Addr
	PeerAS             uint32
	State              SessionState
	EstablishedSince   time.Time // zero unless established
	PrefixesReceived   map[Family]uint64
	PrefixesAccepted   map[Family]uint64
	PrefixesSent       map[Family]uint64
	LastError          string
	NegotiatedFamilies []Family
}

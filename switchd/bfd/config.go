package bfd

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults for a PeerConfig's zero timers: FRR bfdd's, so that a session
// between the two needs no configuration beyond the addresses.
const (
	DefaultDesiredMinTx  = 300 * time.Millisecond
	DefaultRequiredMinRx = 300 * time.Millisecond
	DefaultDetectMult    = 3
	// DefaultMultihopMinTTL is the least TTL (hop limit) a multihop
	// session accepts: any. RFC 5883 asks for no check, and BIRD sends
	// multihop packets with the system's default TTL (64); FRR sends 255
	// and accepts 254 and up by default.
	DefaultMultihopMinTTL = 1
)

// Bounds of the timers, FRR's: the engine's clock has 1 ms resolution.
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = 60 * time.Second
)

// slowTx is the least DesiredMinTx a session advertises while it is not
// Up (RFC 5880 §6.8.3).
const slowTx = time.Second

// PeerConfig is one BFD session as configured. Peer, Local, Interface and
// Multihop identify it (its Key); AddPeer with the Key of a running session
// changes its timers and admin state in place.
type PeerConfig struct {
	// Peer is the remote system's address.
	Peer netip.Addr
	// Local is the source address of our packets and the destination
	// theirs must have. Required for multihop (RFC 5883 identifies a
	// session by the address pair); for single hop the zero Addr means
	// any, and the kernel picks the source.
	Local netip.Addr
	// Interface binds a single-hop session to a link (required for an
	// IPv6 link-local Peer); "" means any.
	Interface string
	// Multihop selects RFC 5883 (UDP 4784, TTL checked against MinTTL)
	// instead of RFC 5881 (UDP 3784, TTL 255 only).
	Multihop bool

	// DesiredMinTx, RequiredMinRx and DetectMult are the timers of
	// RFC 5880 §6.8.1 (bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval,
	// bfd.DetectMult); zero means the Default.
	DesiredMinTx  time.Duration
	RequiredMinRx time.Duration
	DetectMult    uint8
	// MinTTL is the least TTL a multihop session accepts (zero: any).
	// Single-hop sessions accept 255 only (GTSM, RFC 5881 §5).
	MinTTL uint8
	// AdminDown holds the session in AdminDown (RFC 5880 §6.8.16): the
	// peer is told, and does not take what BFD protects down.
	AdminDown bool
}

// Key identifies a session.
type Key struct {
	Peer      netip.Addr
	Local     netip.Addr
	Interface string
	Multihop  bool
}

func (k Key) String() string {
	s := k.Peer.String()
	if k.Local.IsValid() {
		s += " from " + k.Local.String()
	}
	if k.Interface != "" {
		s += " on " + k.Interface
	}
	if k.Multihop {
		s += " multihop"
	}
	return s
}

// Key is c's identity.
func (c PeerConfig) Key() Key {
	return Key{Peer: c.Peer, Local: c.Local, Interface: c.Interface, Multihop: c.Multihop}
}

// FieldError is a PeerConfig field with a value the engine refuses.
// Field is the Go field's name (DesiredMinTx); switchd/config maps it to
// the OpenConfig leaf.
type FieldError struct {
	Peer   netip.Addr
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("bfd peer %v: %s: %s", e.Peer, e.Field, e.Reason)
}

// Validate checks c; every broken rule is a *FieldError in the joined
// error.
func (c PeerConfig) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns c with its zero timers defaulted, or why c is
// refused.
func (c PeerConfig) withDefaults() (PeerConfig, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Peer: c.Peer, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	switch {
	case !c.Peer.IsValid():
		bad("Peer", "missing")
	case c.Peer.IsUnspecified() || c.Peer.IsMulticast():
		bad("Peer", "%v is not a unicast address", c.Peer)
	case c.Peer.Is4In6():
		bad("Peer", "%v: write an IPv4 address as such", c.Peer)
	case c.Peer.Zone() != "":
		bad("Peer", "%v: give the link as Interface, not as a zone", c.Peer)
	}
	if c.Local.IsValid() && c.Peer.IsValid() && c.Local.Is4() != c.Peer.Is4() {
		bad("Local", "%v is not of Peer's address family", c.Local)
	}
	if c.Local.IsValid() && (c.Local.IsUnspecified() || c.Local.IsMulticast() || c.Local.Is4In6() || c.Local.Zone() != "") {
		bad("Local", "%v is not a plain unicast address", c.Local)
	}
	if c.Multihop {
		if !c.Local.IsValid() {
			bad("Local", "required for a multihop session")
		}
		if c.Interface != "" {
			bad("Interface", "only for a single-hop session")
		}
		if c.Peer.IsLinkLocalUnicast() {
			bad("Peer", "%v is link-local: a multihop peer must be routable", c.Peer)
		}
		if c.MinTTL == 0 {
			c.MinTTL = DefaultMultihopMinTTL
		}
	} else {
		if c.Peer.Is6() && c.Peer.IsLinkLocalUnicast() && c.Interface == "" {
			bad("Interface", "required for the link-local peer %v", c.Peer)
		}
		if c.MinTTL != 0 && c.MinTTL != 255 {
			bad("MinTTL", "%d: a single-hop session accepts TTL 255 only", c.MinTTL)
		}
		c.MinTTL = 255
	}
	if len(c.Interface) > 15 {
		bad("Interface", "%q is longer than 15 bytes", c.Interface)
	}
	interval := func(field string, d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < MinInterval || *d > MaxInterval:
			bad(field, "%v is outside %v..%v", *d, MinInterval, MaxInterval)
		case *d%time.Microsecond != 0:
			bad(field, "%v is not a whole number of microseconds", *d)
		}
	}
	interval("DesiredMinTx", &c.DesiredMinTx, DefaultDesiredMinTx)
	interval("RequiredMinRx", &c.RequiredMinRx, DefaultRequiredMinRx)
	if c.DetectMult == 0 {
		c.DetectMult = DefaultDetectMult
	}
	return c, errors.Join(errs...)
}

package bgp

import (
	"errors"
	"net/netip"
	"strings"
)

// FieldError is one rule of the configuration a Config breaks, located by
// what it concerns, so that switchd/config can report it at the OpenConfig
// path of the leaf that gave the value (a neighbor's own leaf or its peer
// group's). Each rule is checked here, in one place, and config maps.
type FieldError struct {
	// Neighbor is the neighbor the field belongs to; the zero Addr means
	// the global settings.
	Neighbor netip.Addr
	// Field is the leaf's OpenConfig schema path relative to the
	// neighbor's list entry (timers/config/hold-time) or, for the global
	// settings, to bgp/global (graceful-restart/config/restart-time); ""
	// means the neighbor (or the global settings) as a whole.
	Field string
	// Reason says what is wrong, naming the value.
	Reason string
}

// Error is the reason alone: validate wraps it in the neighbor's name, as
// every other error of a neighbor.
func (e *FieldError) Error() string { return e.Reason }

// Fields of the configuration that more than one rule, or switchd/config,
// refers to.
const (
	FieldRestartTime     = "graceful-restart/config/restart-time"
	FieldStaleRoutesTime = "graceful-restart/config/stale-routes-time"
	FieldHoldTime        = "timers/config/hold-time"
	FieldKeepalive       = "timers/config/keepalive-interval"
	FieldPeerAS          = "config/peer-as"

	// Leaves of a family's prefix-limit config (Family.prefixLimitField).
	FieldMaxPrefixes      = "max-prefixes"
	FieldWarningThreshold = "warning-threshold-pct"
)

// identity is the family's OpenConfig identity (AFI_SAFI_TYPE), the name
// a user wrote in the config.
func (f Family) identity() string {
	return strings.ToUpper(strings.ReplaceAll(f.String(), "-", "_"))
}

// AfiSafiField is the Field of family f's afi-safi list entry.
func AfiSafiField(f Family) string {
	return "afi-safis/afi-safi[afi-safi-name=" + f.identity() + "]"
}

// PrefixLimitField is the Field of a leaf of family f's prefix-limit
// config (afi-safis/afi-safi[afi-safi-name=IPV4_UNICAST]/ipv4-unicast/
// prefix-limit/config/max-prefixes), so that switchd/config can say which
// container, the neighbor's or its group's, gave it.
func PrefixLimitField(f Family, leaf string) string {
	return AfiSafiField(f) + "/" + f.String() + "/prefix-limit/config/" + leaf
}

// SplitErrors takes an error of Validate or Apply apart: the FieldErrors
// in it, and every other problem as an error whose message keeps the
// context it was wrapped in ("invalid bgp config: neighbor 0 (...): ...").
func SplitErrors(err error) (fields []*FieldError, others []error) {
	var walk func(err error, prefix string)
	walk = func(err error, prefix string) {
		var fe *FieldError
		switch u := err.(type) {
		case *FieldError:
			fields = append(fields, u)
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, prefix)
			}
		case interface{ Unwrap() error }:
			// A wrapper "context: %w" adds its context in front of the
			// child's message; anything else is kept whole.
			if child := u.Unwrap(); child != nil {
				if ctx, ok := strings.CutSuffix(err.Error(), child.Error()); ok {
					walk(child, prefix+ctx)
					return
				}
			}
			if errors.As(err, &fe) {
				fields = append(fields, fe)
				return
			}
			others = append(others, errors.New(prefix+err.Error()))
		default:
			others = append(others, errors.New(prefix+err.Error()))
		}
	}
	if err != nil {
		walk(err, "")
	}
	return fields, others
}

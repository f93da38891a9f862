package fib

import (
	"errors"
	"fmt"
)

// maxWeight is the largest ECMP weight the kernel can carry: rtnh_hops is
// one byte holding weight-1.
const maxWeight = 256

// Validate reports what is wrong with r, if anything, before it is handed to
// the kernel. It accepts r normalized or not.
func (r Route) Validate() error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("route %v: %w", r, err)
	}
	return nil
}

func (r Route) validate() error {
	k := r.Key
	if !k.Dst.IsValid() {
		return errors.New("no destination prefix")
	}
	if k.Dst.Addr().Is4In6() {
		return errors.New("destination is an IPv4-mapped IPv6 prefix; use the IPv4 prefix")
	}
	if k.Dst.Addr().Zone() != "" {
		return errors.New("destination has an IPv6 zone")
	}
	if k.Table < 0 || k.Priority < 0 {
		return errors.New("negative table or metric")
	}
	switch r.Type {
	case 0, Unicast:
		if len(r.NextHops) == 0 {
			return errors.New("unicast route without next hops")
		}
	case Blackhole, Unreachable:
		if len(r.NextHops) != 0 {
			return errors.New("blackhole or unreachable route with next hops")
		}
		return nil
	default:
		return fmt.Errorf("unsupported route type %d", r.Type)
	}
	v4 := k.Dst.Addr().Is4()
	for _, nh := range r.NextHops {
		if err := nh.validate(v4); err != nil {
			return fmt.Errorf("next hop %v: %w", nh, err)
		}
	}
	return nil
}

func (n NextHop) validate(v4Route bool) error {
	if n.Weight < 0 || n.Weight > maxWeight {
		return fmt.Errorf("weight outside 1..%d", maxWeight)
	}
	if n.Ifindex < 0 {
		return errors.New("negative ifindex")
	}
	gw := n.Gateway
	if !gw.IsValid() {
		if n.Ifindex == 0 {
			return errors.New("neither gateway nor interface")
		}
		return nil
	}
	if gw.Zone() != "" {
		return errors.New("gateway has a zone; set Ifindex instead")
	}
	if gw.Is4In6() {
		return errors.New("gateway is an IPv4-mapped IPv6 address; use the IPv4 address")
	}
	if gw.IsUnspecified() {
		return errors.New("unspecified gateway")
	}
	if gw.Is4() && !v4Route {
		// The kernel takes an IPv6 gateway for an IPv4 route (RFC 5549/8950)
		// but not the other way round.
		return errors.New("IPv4 gateway for an IPv6 route")
	}
	if gw.Is6() && gw.IsLinkLocalUnicast() && n.Ifindex == 0 {
		return errors.New("link-local gateway needs an interface")
	}
	return nil
}

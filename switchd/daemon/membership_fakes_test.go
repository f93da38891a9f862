package daemon

import (
	"context"
	"net/netip"

	"github.com/switchd/switchd/policy"
)

func (s *testSpeaker) SetMembership(ctx context.Context, m map[netip.Prefix][]uint32) error {
	s.rec.add("bgp.SetMembership %v", m)
	return nil
}

func (p *testPolicy) SetMembers(source string, sel policy.Selector, addrs []netip.Addr) error {
	p.rec.add("policy.SetMembers %s %s %v", source, sel, addrs)
	return nil
}

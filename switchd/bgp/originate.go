package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
)

// originated is the speaker's bookkeeping of the prefixes it announces
// itself. They have two sources: the config (Apply owns Config.Originate)
// and components that announce prefixes of their own at run time
// (SetOriginated, by owner: the daemon's workload blocks). GoBGP is given
// the union, so a reload never withdraws a workload block, a prefix both
// want stays announced until neither does, and a restart of the GoBGP
// server re-adds both.
type originated struct {
	config map[netip.Prefix]struct{}
	owners map[string]map[netip.Prefix]struct{}
	// announced are the prefixes in GoBGP's RIB (AddPath succeeded and
	// no DeletePath since). A failed AddPath or DeletePath leaves the
	// prefix where it was, so the next Apply or SetOriginated retries it.
	announced map[netip.Prefix]struct{}
}

func newOriginated() originated {
	return originated{
		owners:    make(map[string]map[netip.Prefix]struct{}),
		announced: make(map[netip.Prefix]struct{}),
	}
}

// wanted reports whether the config or some owner originates p.
func (o *originated) wanted(p netip.Prefix) bool {
	if _, ok := o.config[p]; ok {
		return true
	}
	for _, ps := range o.owners {
		if _, ok := ps[p]; ok {
			return true
		}
	}
	return false
}

// all is every prefix announced or wanted, sorted.
func (o *originated) all() []netip.Prefix {
	u := maps.Clone(o.announced)
	maps.Copy(u, o.config)
	for _, m := range o.owners {
		maps.Copy(u, m)
	}
	return sortedPrefixes(u)
}

// checkOriginPrefix is the rule every originated prefix follows, from the
// config or from SetOriginated.
func checkOriginPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return errors.New("invalid prefix")
	case p != p.Masked():
		return fmt.Errorf("host bits set (did you mean %v?)", p.Masked())
	case p.Addr().Zone() != "" || p.Addr().Is4In6():
		return errors.New("want a plain IPv4 or IPv6 prefix")
	}
	return nil
}

// SetOriginated makes owner's originated prefixes exactly ps, announcing
// and withdrawing only the difference: one call per change of a workload
// block, without re-validating the config or touching any neighbor.
// Prefixes the config originates too stay announced. Before the first
// Apply it only records ps (Apply announces them). An invalid prefix
// refuses the whole call and changes nothing; a GoBGP failure leaves that
// prefix to be retried by the next Apply or SetOriginated.
func (s *Speaker) SetOriginated(ctx context.Context, owner string, ps []netip.Prefix) error {
	want := make(map[netip.Prefix]struct{}, len(ps))
	var errs []error
	for _, p := range ps {
		if err := checkOriginPrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("prefix %v: %w", p, err))
			continue
		}
		want[p] = struct{}{}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set originated prefixes of %s: %w", owner, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("set originated prefixes of %s: speaker stopped", owner)
	}
	old := s.orig.owners[owner]
	if len(want) == 0 {
		delete(s.orig.owners, owner)
	} else {
		s.orig.owners[owner] = want
	}
	if s.running == nil {
		return nil
	}
	cands := maps.Clone(want)
	maps.Copy(cands, old)
	if err := errors.Join(s.syncOriginatedLocked(ctx, sortedPrefixes(cands))...); err != nil {
		return fmt.Errorf("set originated prefixes of %s: %w", owner, err)
	}
	return nil
}

// syncOriginatedLocked makes GoBGP announce exactly the wanted prefixes
// among cands (sorted): withdrawals first, then announcements.
func (s *Speaker) syncOriginatedLocked(ctx context.Context, cands []netip.Prefix) []error {
	var errs []error
	for _, p := range cands {
		_, on := s.orig.announced[p]
		if !on || s.orig.wanted(p) {
			continue
		}
		path, err := originPath(p)
		if err == nil {
			// By path, not by UUID: GoBGP resolves a UUID by scanning
			// the whole RIB.
			err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw originated prefix %v: %w", p, err))
			continue
		}
		delete(s.orig.announced, p)
	}
	for _, p := range cands {
		_, on := s.orig.announced[p]
		if on || !s.orig.wanted(p) {
			continue
		}
		path, err := originPath(p)
		if err == nil {
			var rs []apiutil.AddPathResponse
			if rs, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err == nil && len(rs) == 1 {
				err = rs[0].Error
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("originate prefix %v: %w", p, err))
			continue
		}
		s.orig.announced[p] = struct{}{}
	}
	return errs
}

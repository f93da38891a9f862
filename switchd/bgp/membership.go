package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Group membership in BGP (/switchd/workload-policy/groups): per address
// of a local endpoint (a host prefix, /32 or /128) a route with next hop
// self, as the blocks have, carrying the large community ASN:ID:0 for each
// group the endpoint is in and the marker ASN:0:MembershipMarker, ASN
// being the originator's (a fabric's nodes differ in ASN, so receivers
// match any). switchd never installs a route with the marker; a
// third-party router that does forwards as the covering block would.
const MembershipMarker = 1

// membership is the speaker's bookkeeping of membership routes: want is
// the last SetMembership's (ids sorted and distinct), announced the ids
// of each prefix GoBGP holds (as memberKey), so a change of groups is one
// AddPath that replaces the path and a withdrawal one DeletePath.
type membership struct {
	want      map[netip.Prefix][]uint32
	announced map[netip.Prefix]string
}

func memberKey(ids []uint32) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	return b.String()
}

// all is every prefix wanted or announced, sorted.
func (m *membership) all() []netip.Prefix {
	u := make(map[netip.Prefix]struct{}, len(m.want)+len(m.announced))
	for p := range m.want {
		u[p] = struct{}{}
	}
	for p := range m.announced {
		u[p] = struct{}{}
	}
	return sortedPrefixes(u)
}

// SetMembership makes the membership routes exactly m: per host prefix
// (an endpoint's address as /32 or /128) the ids of its groups. Only the
// prefixes whose groups changed are touched. A prefix with no ids is no
// member of anything and is not announced. An invalid prefix or an id of
// 0 refuses the whole call; a GoBGP failure leaves that prefix to the
// next SetMembership or Apply. Before the first Apply it only records m.
func (s *Speaker) SetMembership(ctx context.Context, m map[netip.Prefix][]uint32) error {
	want := make(map[netip.Prefix][]uint32, len(m))
	var errs []error
	for p, ids := range m {
		if err := checkOriginPrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("prefix %v: %w", p, err))
			continue
		}
		if !p.IsSingleIP() {
			errs = append(errs, fmt.Errorf("prefix %v: not a host prefix", p))
			continue
		}
		ids = slices.Compact(slices.Sorted(slices.Values(ids)))
		if len(ids) > 0 && ids[0] == 0 {
			errs = append(errs, fmt.Errorf("prefix %v: group id 0 is the marker's", p))
			continue
		}
		if len(ids) > 0 {
			want[p] = ids
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set membership: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("set membership: speaker stopped")
	}
	old := s.memb.want
	s.memb.want = want
	if s.running == nil {
		return nil
	}
	var cands []netip.Prefix
	for p, ids := range want {
		if !slices.Equal(old[p], ids) {
			cands = append(cands, p)
		}
	}
	for p := range old {
		if _, ok := want[p]; !ok {
			cands = append(cands, p)
		}
	}
	slices.SortFunc(cands, comparePrefix)
	if err := errors.Join(s.syncMembershipLocked(cands)...); err != nil {
		return fmt.Errorf("set membership: %w", err)
	}
	return nil
}

// syncMembershipLocked makes GoBGP hold the wanted membership route of
// each of cands: withdrawn if unwanted, (re)announced if its groups
// differ from what GoBGP has. A prefix the speaker originates as a
// prefix (config or SetOriginated) is left to that path: one local path
// per prefix, and the originated one is what forwarding needs.
func (s *Speaker) syncMembershipLocked(cands []netip.Prefix) []error {
	if s.memb.announced == nil {
		s.memb.announced = make(map[netip.Prefix]string)
	}
	var errs []error
	for _, p := range cands {
		ids := s.memb.want[p]
		if s.orig.wanted(p) {
			ids = nil
		}
		key, on := s.memb.announced[p]
		if len(ids) == 0 {
			if !on {
				continue
			}
			path, err := membershipPath(p, s.running.ASN, nil)
			if err == nil {
				err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("withdraw membership of %v: %w", p, err))
				continue
			}
			delete(s.memb.announced, p)
			continue
		}
		if on && key == memberKey(ids) {
			continue
		}
		path, err := membershipPath(p, s.running.ASN, ids)
		if err == nil {
			var rs []apiutil.AddPathResponse
			if rs, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err == nil && len(rs) == 1 {
				err = rs[0].Error
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announce membership of %v: %w", p, err))
			continue
		}
		s.memb.announced[p] = memberKey(ids)
	}
	return errs
}

// membershipPath is p's membership route: the originated path with the
// large communities asn:id:0 per id and the marker asn:0:1.
func membershipPath(p netip.Prefix, asn uint32, ids []uint32) (*apiutil.Path, error) {
	path, err := originPath(p)
	if err != nil {
		return nil, err
	}
	cs := make([]*bgp.LargeCommunity, 0, len(ids)+1)
	cs = append(cs, bgp.NewLargeCommunity(asn, 0, MembershipMarker))
	for _, id := range ids {
		cs = append(cs, bgp.NewLargeCommunity(asn, id, 0))
	}
	path.Attrs = append(path.Attrs, bgp.NewPathAttributeLargeCommunities(cs))
	return path, nil
}

// Membership reports whether r is a membership route (some selected path
// carries the marker) and the ids of the groups its paths name, sorted.
// A withdrawn route (no paths) is no membership route: the caller knows
// which prefixes it had.
func (r Route) Membership() (ids []uint32, ok bool) {
	// Every learned route passes here on its way to the FIB: the common
	// case, no marker, allocates nothing.
	for _, p := range r.Paths {
		if p.Communities != nil && slices.ContainsFunc(p.Communities.Large, isMarker) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, false
	}
	for _, p := range r.Paths {
		if p.Communities == nil {
			continue
		}
		for _, c := range p.Communities.Large {
			if c.Local1 != 0 && c.Local2 == 0 {
				ids = append(ids, c.Local1)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), true
}

func isMarker(c LargeCommunity) bool { return c.Local1 == 0 && c.Local2 == MembershipMarker }

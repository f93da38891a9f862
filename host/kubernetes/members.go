package kubernetes

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/switchd/switchd/policy"
)

// PeerSelectors are the distinct peer selectors of policies, by their
// canonical form: the selectors whose sets need members.
func PeerSelectors(policies []policy.Policy) map[string]policy.Selector {
	out := map[string]policy.Selector{}
	for _, p := range policies {
		for _, r := range slices.Concat(p.Ingress, p.Egress) {
			if r.Peer.Selector != nil {
				out[r.Peer.Selector.String()] = *r.Peer.Selector
			}
		}
	}
	return out
}

// MemberIndex keeps, for each peer selector, the addresses of the remote
// pods it matches: pods not on this node and not local endpoints (the
// engine has local endpoints from the endpoints themselves). The daemon
// gives its changes to the engine as a second source of members
// (policy.Engine.AddMembers, RemoveMembers), so pods of other nodes are
// selected with no BGP membership routes.
//
// A pod change costs a match against each selector and the pod's own
// addresses, not a pass over every pod: the index keeps each pod's
// labels and the selectors it is counted in. A selector added costs a
// pass over the indexed pods, once.
//
// Threading: not safe for concurrent use (the daemon's loop owns it).
type MemberIndex struct {
	sels map[string]policy.Selector
	pods map[string]*indexedPod // remote pods with addresses, by key
	// refs counts, per selector, the indexed pods holding an address: it
	// is a member while one does (two pods may share one for a moment).
	refs map[string]map[netip.Addr]int
}

type indexedPod struct {
	labels map[string]string
	addrs  []netip.Addr
	sels   map[string]bool // selectors it matches
}

// MemberChange is what changed of one selector's members.
type MemberChange struct {
	Name        string // the selector's canonical form
	Selector    policy.Selector
	Add, Remove []netip.Addr // sorted
}

// NewMemberIndex returns an index with no selectors and no pods.
func NewMemberIndex() *MemberIndex {
	return &MemberIndex{sels: map[string]policy.Selector{}, pods: map[string]*indexedPod{},
		refs: map[string]map[netip.Addr]int{}}
}

// memberDelta gathers the changes of one call, by selector.
type memberDelta map[string]*MemberChange

// add counts addrs in (by 1) or out (-1) of selector name's members; an
// address whose count leaves or reaches 0 is a change.
func (d memberDelta) add(x *MemberIndex, name string, addrs []netip.Addr, by int) {
	refs := x.refs[name]
	if refs == nil {
		refs = map[netip.Addr]int{}
		x.refs[name] = refs
	}
	for _, a := range addrs {
		prev := refs[a]
		if prev == 0 && by < 0 {
			continue // not counted: nothing to take back
		}
		if n := prev + by; n <= 0 {
			delete(refs, a)
		} else {
			refs[a] = n
		}
		if prev == 0 || prev+by <= 0 {
			c := d[name]
			if c == nil {
				c = &MemberChange{Name: name, Selector: x.sels[name]}
				d[name] = c
			}
			if by > 0 {
				c.Add = append(c.Add, a)
			} else {
				c.Remove = append(c.Remove, a)
			}
		}
	}
	if len(refs) == 0 {
		delete(x.refs, name)
	}
}

// list are the changes sorted by selector, each address list sorted.
func (d memberDelta) list() []MemberChange {
	out := make([]MemberChange, 0, len(d))
	for _, name := range slices.Sorted(maps.Keys(d)) {
		c := d[name]
		slices.SortFunc(c.Add, netip.Addr.Compare)
		slices.SortFunc(c.Remove, netip.Addr.Compare)
		out = append(out, *c)
	}
	return out
}

// SetSelectors makes sels (by canonical form) the selectors indexed: a
// new one gets the indexed pods it matches, a removed one loses its
// members.
func (x *MemberIndex) SetSelectors(sels map[string]policy.Selector) []MemberChange {
	d := memberDelta{}
	for name := range x.sels {
		if _, ok := sels[name]; ok {
			continue
		}
		// Its changes name the selector it had.
		d[name] = &MemberChange{Name: name, Selector: x.sels[name]}
		for _, key := range slices.Sorted(maps.Keys(x.pods)) {
			if p := x.pods[key]; p.sels[name] {
				delete(p.sels, name)
				d.add(x, name, p.addrs, -1)
			}
		}
		if len(d[name].Remove) == 0 {
			delete(d, name)
		}
		delete(x.sels, name)
	}
	for name, s := range sels {
		if _, ok := x.sels[name]; ok {
			continue
		}
		x.sels[name] = s
		for _, p := range x.pods {
			if s.Matches(p.labels) {
				p.sels[name] = true
				d.add(x, name, p.addrs, +1)
			}
		}
	}
	return d.list()
}

// SetPod indexes pod p as a remote member: remote false (a pod of this
// node, or a local endpoint), a pod without addresses or a pod gone (ok
// false) is no member.
func (x *MemberIndex) SetPod(key string, p Pod, remote bool) []MemberChange {
	old := x.pods[key]
	if !remote || len(p.Addrs) == 0 {
		if old == nil {
			return nil
		}
		delete(x.pods, key)
		d := memberDelta{}
		for name := range old.sels {
			d.add(x, name, old.addrs, -1)
		}
		return d.list()
	}
	if old != nil && maps.Equal(old.labels, p.Labels) && slices.Equal(old.addrs, p.Addrs) {
		return nil
	}
	np := &indexedPod{labels: maps.Clone(p.Labels), addrs: slices.Clone(p.Addrs), sels: map[string]bool{}}
	for name, s := range x.sels {
		if s.Matches(np.labels) {
			np.sels[name] = true
		}
	}
	x.pods[key] = np
	// Count in before out, so an address the pod keeps in a selector it
	// keeps is no change.
	d := memberDelta{}
	for name := range np.sels {
		d.add(x, name, np.addrs, +1)
	}
	if old != nil {
		for name := range old.sels {
			d.add(x, name, old.addrs, -1)
		}
	}
	return d.list()
}

// Members are the addresses of the remote pods selector name matches,
// sorted.
func (x *MemberIndex) Members(name string) []netip.Addr {
	return slices.SortedFunc(maps.Keys(x.refs[name]), netip.Addr.Compare)
}

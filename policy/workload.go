package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// Names of the workload objects in the table.
const (
	wlToMap     = "wl-to"   // oifname → ingress chain of the endpoint behind it
	wlFromMap   = "wl-from" // iifname → egress chain of the endpoint behind it
	wlDenyChain = "wl-deny" // Default Deny, for endpoints no policy selects
	// The dispatch chains and the interface set: workload_ifaces.go.
)

// workload compiles workload policy (Intent) and the endpoints into the
// table, keeping rules few and membership data:
//
//   - A profile chain per distinct combination of policies selecting an
//     endpoint in a direction (named by a hash of the policy names), not
//     per endpoint: an endpoint joins its profile through a verdict-map
//     element (wl-to: oifname → ingress profile; wl-from: iifname →
//     egress profile). Every endpoint has both elements, so a workload
//     interface with none is unknown and dropped (workload_ifaces.go).
//     The chain holds the rules of its policies in order
//     and ends with a counted drop (Kubernetes: selected means what no
//     rule allows is denied). Allow returns (in the forward hook the
//     destination's ingress check follows the source's egress check).
//   - A peer selector is a lookup in a named set per family
//     (sel4-/sel6-<hash of the canonical selector>), whose elements are
//     the addresses of matching endpoints, plus any second source given
//     to setMembers (memberships learned over BGP, later); and a lookup,
//     in a second rule, in an interval set per family (seln4-/seln6-)
//     holding the prefixes of the network sets it matches (netset.go).
//   - CIDR peers (with excepts) and port lists are interval sets named by
//     their content: they follow from the intent, not from membership.
//
// So an endpoint add, delete or label change writes set and map elements
// only, unless it needs a combination of policies no endpoint had (a new
// profile chain) or was the last of one (its chain goes). setIntent
// recompiles everything, and the Table sends only what differs.
type workload struct {
	tb     *Table
	intent Intent
	active bool // some policy, or Default Deny: the slots are filled
	// compiled: setIntent ran (and succeeded, or the next one recompiles).
	compiled bool

	eps     map[string]*wlEndpoint // by ID
	ifOwner map[string]string      // interface → ID of the endpoint whose map entries it holds

	// Compiled from the intent.
	sels     map[string]*selSet     // peer selectors, by canonical form
	static   map[string]staticSet   // CIDR and port sets, by name
	rules    map[string][]ChainRule // "<policy index>/<dir>" → its rules
	profiles map[string]*profile    // by chain name
	chains   map[string]bool        // slot and deny chains of the intent

	// extra are members from other sources: selector → source → addresses
	// (unmapped), a set per source so a change is diffed, not replayed.
	extra map[string]map[string]addrSet
	// netElems are the elements of the network-set sets (seln4-/seln6-,
	// netset.go), by set name.
	netElems map[string][]Element
	// ifElems are wl-ifaces' elements (workload_ifaces.go).
	ifElems []Element
	// quiet: memberAddrs counts only; setIntent sends the difference.
	// And release parks a profile chain no endpoint holds instead of
	// deleting it, so one that comes back unchanged is not rewritten.
	quiet  bool
	parked map[string]bool
}

type wlEndpoint struct {
	ep      Endpoint
	in, out string   // chain its map entries go to; "" wl-open
	sels    []string // selectors it is a member of
}

// selSet is the pair of sets of one peer selector.
type selSet struct {
	sel  Selector
	refs map[netip.Addr]int // address → sources (endpoints, extras) holding it
}

// profile is the chain of endpoints selected by the same policies in one
// direction.
type profile struct {
	refs  int
	dir   string
	names []string // the policies, in order
	keys  []string // their w.rules keys
}

func newWorkload(tb *Table) *workload {
	return &workload{
		tb:       tb,
		eps:      map[string]*wlEndpoint{},
		ifOwner:  map[string]string{},
		sels:     map[string]*selSet{},
		static:   map[string]staticSet{},
		rules:    map[string][]ChainRule{},
		profiles: map[string]*profile{},
		chains:   map[string]bool{},
		extra:    map[string]map[string]addrSet{},
		netElems: map[string][]Element{},
	}
}

// filled reports whether workload fills slot.
func (w *workload) filled(slot string) bool {
	return w.active && (slot == SlotWorkloadInput || slot == SlotWorkloadForward)
}

// setIntent recompiles for in: endpoints and extras leave the old
// compilation, the intent's objects are replaced, and they join again.
// What did not change produces no kernel message.
func (w *workload) setIntent(in Intent) error {
	if w.compiled && reflect.DeepEqual(in, w.intent) {
		return nil // a reload that left workload policy alone
	}
	if w.compiled && onlyNetSetsDiffer(w.intent, in) {
		w.compiled = false
		w.intent = in
		if err := w.setNetSets(); err != nil {
			return err
		}
		w.compiled = true
		return nil
	}
	if w.compiled && w.active && sameMembership(w.intent, in) {
		return w.setRules(in)
	}
	w.compiled = false
	// Selector set elements are diffed, not replayed: every endpoint and
	// extra leaves and joins again, which would delete and add each
	// element and make the next Apply look at all of them (O(endpoints x
	// selectors) for one policy added).
	before := make(map[string]map[netip.Addr]int, len(w.sels))
	for s, ss := range w.sels {
		before[s] = maps.Clone(ss.refs)
	}
	w.quiet, w.parked = true, map[string]bool{}
	defer func() { w.quiet, w.parked = false, nil }()
	for _, e := range w.eps {
		if err := w.leave(e); err != nil {
			return err
		}
	}
	for s, bySrc := range w.extra {
		for _, as := range bySrc {
			if err := w.memberAddrs(s, as.sorted(), -1); err != nil {
				return err
			}
		}
	}
	old := *w
	w.intent = in
	w.active = len(in.Policies) > 0 || in.Default == Deny
	w.sels, w.static, w.rules, w.chains = map[string]*selSet{}, map[string]staticSet{}, map[string][]ChainRule{}, map[string]bool{}
	if w.active {
		if err := w.compileIntent(); err != nil {
			return err
		}
	}
	// Drop what the new intent lacks.
	for s := range old.sels {
		if w.sels[s] == nil {
			for _, f := range []family{fam4, fam6} {
				w.tb.DeleteSet(selectorSetName(f, s))
				w.tb.DeleteSet(selectorNetSetName(f, s))
			}
		}
	}
	for n := range old.static {
		if _, ok := w.static[n]; !ok {
			w.tb.DeleteSet(n)
		}
	}
	for n := range old.chains {
		if !w.chains[n] {
			w.tb.DeleteChain(n)
		}
	}
	if old.active && !w.active {
		// In the same transaction as the chains their elements jump to:
		// the Table deletes unwanted sets before unwanted chains.
		w.tb.DeleteSet(wlToMap)
		w.tb.DeleteSet(wlFromMap)
		w.tb.DeleteSet(wlIfaceSet)
		w.ifElems = nil
	}
	for s, bySrc := range w.extra {
		for _, as := range bySrc {
			if err := w.memberAddrs(s, as.sorted(), +1); err != nil {
				return err
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.eps)) {
		if err := w.join(w.eps[id]); err != nil {
			return err
		}
	}
	w.quiet = false
	if err := w.sendMembers(before); err != nil {
		return err
	}
	for name := range w.parked {
		if w.profiles[name] == nil {
			w.tb.DeleteChain(name)
		}
	}
	if err := w.setNetSets(); err != nil {
		return err
	}
	w.compiled = true
	return nil
}

// sendMembers gives the Table the selector set elements that differ
// from before (the members by selector, counted quietly since); the sets
// of selectors gone were deleted whole.
func (w *workload) sendMembers(before map[string]map[netip.Addr]int) error {
	for _, s := range slices.Sorted(maps.Keys(w.sels)) {
		now, old := w.sels[s].refs, before[s]
		var add, del []netip.Addr
		for a := range now {
			if _, ok := old[a]; !ok {
				add = append(add, a)
			}
		}
		for a := range old {
			if _, ok := now[a]; !ok {
				del = append(del, a)
			}
		}
		slices.SortFunc(add, netip.Addr.Compare)
		slices.SortFunc(del, netip.Addr.Compare)
		for _, a := range del {
			if err := w.tb.DeleteElements(selectorSetName(famOf(a), s), Element{Key: addrKey(a)}); err != nil {
				return fmt.Errorf("selector %s: %w", s, err)
			}
		}
		for _, a := range add {
			if err := w.tb.AddElements(selectorSetName(famOf(a), s), Element{Key: addrKey(a)}); err != nil {
				return fmt.Errorf("selector %s: %w", s, err)
			}
		}
	}
	return nil
}

// sameMembership reports whether a and b put every endpoint in the same
// profiles and selector sets: the same Default, the same policies in the
// same order with the same selectors and directions, the same peer
// selectors. Then only rules (and network sets) differ.
func sameMembership(a, b Intent) bool {
	if a.Default != b.Default || len(a.Policies) != len(b.Policies) {
		return false
	}
	peers := func(in Intent) map[string]bool {
		out := map[string]bool{}
		for _, p := range in.Policies {
			for _, r := range slices.Concat(p.Ingress, p.Egress) {
				if r.Peer.Selector != nil {
					out[r.Peer.Selector.String()] = true
				}
			}
		}
		return out
	}
	for i, p := range a.Policies {
		q := b.Policies[i]
		if p.Name != q.Name || !p.Selector.Equal(q.Selector) || p.SelectsIngress != q.SelectsIngress || p.SelectsEgress != q.SelectsEgress {
			return false
		}
	}
	return maps.Equal(peers(a), peers(b))
}

// setRules is setIntent when only rules changed (sameMembership): no
// endpoint moves; the profile chains are rewritten (the Table edits the
// rules that differ) and the CIDR and port sets replaced.
func (w *workload) setRules(in Intent) error {
	w.compiled = false
	oldStatic := w.static
	w.intent = in
	w.static, w.rules = map[string]staticSet{}, map[string][]ChainRule{}
	w.compileRules()
	if err := w.setStatic(); err != nil {
		return err
	}
	for n := range oldStatic {
		if _, ok := w.static[n]; !ok {
			w.tb.DeleteSet(n)
		}
	}
	for name, p := range w.profiles {
		if err := w.setProfileChain(name, p); err != nil {
			return fmt.Errorf("workload policy: %w", err)
		}
	}
	if err := w.setNetSets(); err != nil {
		return err
	}
	if err := w.setIfaces(); err != nil {
		return err
	}
	w.compiled = true
	return nil
}

// compileIntent makes the intent's sets, rules and fixed chains.
func (w *workload) compileIntent() error {
	for s, sel := range w.compileRules() {
		w.sels[s] = &selSet{sel: sel, refs: map[netip.Addr]int{}}
		for _, f := range []family{fam4, fam6} {
			if err := w.tb.SetSet(Set{Name: selectorSetName(f, s), KeyType: f.keyType()}); err != nil {
				return fmt.Errorf("workload policy: %w", err)
			}
		}
		if err := w.netSetSets(s); err != nil {
			return err
		}
	}
	if err := w.setStatic(); err != nil {
		return err
	}
	for _, m := range []string{wlToMap, wlFromMap} {
		if err := w.tb.SetSet(Set{Name: m, KeyType: nftables.TypeIFName, Verdict: true}); err != nil {
			return fmt.Errorf("workload policy: %w", err)
		}
	}
	if err := w.tb.SetSet(ifaceSetDef); err != nil {
		return fmt.Errorf("workload policy: %w", err)
	}
	if err := w.setIfaces(); err != nil {
		return err
	}
	// In the forward hook the source's egress check, then the
	// destination's ingress check; each dispatch chain returns here.
	chains := append([]Chain{
		{Name: SlotWorkloadForward, Rules: []ChainRule{ctEstablished(), jumpRule(wlFromChain), jumpRule(wlToChain)}},
		{Name: SlotWorkloadInput, Rules: []ChainRule{ctEstablished(), ndpAccept(), jumpRule(wlFromChain)}},
	}, dispatchChains()...)
	if w.intent.Default == Deny {
		chains = append(chains, Chain{Name: wlDenyChain, Rules: []ChainRule{dropRule("default deny")}})
	}
	for _, c := range chains {
		if err := w.tb.SetChain(c); err != nil {
			return fmt.Errorf("workload policy: %w", err)
		}
		w.chains[c.Name] = true
	}
	return nil
}

// compileRules compiles every policy's rules (w.rules, w.static) and
// returns the peer selectors they use.
func (w *workload) compileRules() map[string]Selector {
	rc := &ruleCompiler{sets: w.static, selectors: map[string]Selector{}}
	for i := range w.intent.Policies {
		p := &w.intent.Policies[i]
		for _, dir := range []string{"ingress", "egress"} {
			rs := p.Ingress
			if dir == "egress" {
				rs = p.Egress
			}
			var out []ChainRule
			for j := range rs {
				out = rc.compile(out, p, dir, &rs[j])
			}
			w.rules[fmt.Sprintf("%d/%s", i, dir)] = out
		}
	}
	return rc.selectors
}

// setStatic puts the CIDR and port sets in the table.
func (w *workload) setStatic() error {
	for n, st := range w.static {
		if err := w.tb.SetSet(st.def); err != nil {
			return fmt.Errorf("workload policy: %w", err)
		}
		if err := w.tb.AddElements(n, st.elements...); err != nil {
			return fmt.Errorf("workload policy: %w", err)
		}
	}
	return nil
}

// upsert adds endpoint ep or replaces the one with its ID.
func (w *workload) upsert(ep Endpoint) error {
	ep.Addrs = slices.Clone(ep.Addrs)
	ep.Labels = maps.Clone(ep.Labels)
	if e := w.eps[ep.ID]; e != nil {
		if err := w.leave(e); err != nil {
			return err
		}
	}
	e := &wlEndpoint{ep: ep}
	w.eps[ep.ID] = e
	return w.join(e)
}

// remove deletes endpoint id (nothing if unknown).
func (w *workload) remove(id string) error {
	e := w.eps[id]
	if e == nil {
		return nil
	}
	delete(w.eps, id)
	return w.leave(e)
}

// setMembers makes addrs the members source contributes to selector
// (canonical form), whether or not a policy uses the selector yet. Only
// the difference to what source gave before reaches the sets.
func (w *workload) setMembers(source, selector string, addrs []netip.Addr) error {
	want := make(addrSet, len(addrs))
	for _, a := range addrs {
		want[a.Unmap()] = struct{}{}
	}
	have := w.extra[selector][source]
	var gone []netip.Addr
	for a := range have {
		if _, ok := want[a]; !ok {
			gone = append(gone, a)
		}
	}
	slices.SortFunc(gone, netip.Addr.Compare)
	if err := w.removeMembers(source, selector, gone); err != nil {
		return err
	}
	return w.addMembers(source, selector, addrs)
}

// addMembers adds addrs to what source contributes to selector; an
// address source has already given is no change.
func (w *workload) addMembers(source, selector string, addrs []netip.Addr) error {
	var added []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		bySrc := w.extra[selector]
		if _, ok := bySrc[source][a]; ok {
			continue
		}
		if bySrc == nil {
			bySrc = map[string]addrSet{}
			w.extra[selector] = bySrc
		}
		if bySrc[source] == nil {
			bySrc[source] = addrSet{}
		}
		bySrc[source][a] = struct{}{}
		added = append(added, a)
	}
	return w.memberAddrs(selector, added, +1)
}

// removeMembers takes addrs out of what source contributes to selector;
// an address source has not given is no change.
func (w *workload) removeMembers(source, selector string, addrs []netip.Addr) error {
	var gone []netip.Addr
	bySrc := w.extra[selector]
	for _, a := range addrs {
		a = a.Unmap()
		if _, ok := bySrc[source][a]; !ok {
			continue
		}
		delete(bySrc[source], a)
		gone = append(gone, a)
	}
	if len(bySrc[source]) == 0 {
		delete(bySrc, source)
	}
	if len(bySrc) == 0 {
		delete(w.extra, selector)
	}
	return w.memberAddrs(selector, gone, -1)
}

// addrSet is a set of addresses.
type addrSet map[netip.Addr]struct{}

// sorted are the addresses of s in order (the Table's messages follow
// the order elements are given in).
func (s addrSet) sorted() []netip.Addr {
	return slices.SortedFunc(maps.Keys(s), netip.Addr.Compare)
}

// join adds e's contributions: set members, profile and map entries.
func (w *workload) join(e *wlEndpoint) error {
	if !w.active {
		return nil
	}
	e.sels = e.sels[:0]
	for s, ss := range w.sels {
		if ss.sel.Matches(e.ep.Labels) {
			e.sels = append(e.sels, s)
			if err := w.memberAddrs(s, e.ep.Addrs, +1); err != nil {
				return fmt.Errorf("endpoint %s: %w", e.ep.ID, err)
			}
		}
	}
	var err error
	if e.in, err = w.acquire(e.ep.Labels, "ingress"); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.ep.ID, err)
	}
	if e.out, err = w.acquire(e.ep.Labels, "egress"); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.ep.ID, err)
	}
	if e.ep.Interface == "" {
		return nil
	}
	if prev := w.eps[w.ifOwner[e.ep.Interface]]; prev != nil && prev != e {
		// The interface moved to e: the previous holder's entries go.
		if err := w.unmap(prev); err != nil {
			return err
		}
	}
	w.ifOwner[e.ep.Interface] = e.ep.ID
	// Every endpoint's interface is in both maps, an open one's to
	// wl-open: an interface in neither is unknown, and dropped.
	for _, m := range []struct{ name, chain string }{{wlToMap, e.in}, {wlFromMap, e.out}} {
		if err := w.tb.AddElements(m.name, mapElement(e.ep.Interface, m.chain)); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.ep.ID, err)
		}
	}
	return nil
}

// unmap deletes e's map entries.
func (w *workload) unmap(e *wlEndpoint) error {
	for _, m := range []string{wlToMap, wlFromMap} {
		if err := w.tb.DeleteElements(m, Element{Key: IfName(e.ep.Interface)}); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.ep.ID, err)
		}
	}
	return nil
}

// leave takes back what join added.
func (w *workload) leave(e *wlEndpoint) error {
	if !w.active {
		return nil
	}
	for _, s := range e.sels {
		if err := w.memberAddrs(s, e.ep.Addrs, -1); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.ep.ID, err)
		}
	}
	e.sels = nil
	if e.ep.Interface != "" && w.ifOwner[e.ep.Interface] == e.ep.ID {
		delete(w.ifOwner, e.ep.Interface)
		if err := w.unmap(e); err != nil {
			return err
		}
	}
	w.release(e.in)
	w.release(e.out)
	e.in, e.out = "", ""
	return nil
}

// memberAddrs counts addrs in (+1) or out (-1) of selector's sets; an
// address is an element while some source holds it. A selector no policy
// uses has no sets and is skipped.
func (w *workload) memberAddrs(selector string, addrs []netip.Addr, d int) error {
	s := w.sels[selector]
	if s == nil {
		return nil
	}
	for _, a := range addrs {
		a = a.Unmap()
		n := s.refs[a] + d
		if w.quiet {
			if n <= 0 {
				delete(s.refs, a)
			} else {
				s.refs[a] = n
			}
			continue
		}
		var err error
		set, el := selectorSetName(famOf(a), selector), Element{Key: addrKey(a)}
		switch {
		case n <= 0:
			delete(s.refs, a)
			if n == 0 {
				err = w.tb.DeleteElements(set, el)
			}
		case n == 1 && d > 0:
			s.refs[a] = n
			err = w.tb.AddElements(set, el)
		default:
			s.refs[a] = n
		}
		if err != nil {
			return fmt.Errorf("selector %s: %w", selector, err)
		}
	}
	return nil
}

// acquire returns the chain an endpoint with these labels jumps to in
// direction dir ("" for none), making its profile chain if it is the
// first endpoint of the profile.
func (w *workload) acquire(labels map[string]string, dir string) (string, error) {
	var names, keys []string
	for i := range w.intent.Policies {
		p := &w.intent.Policies[i]
		sel := p.SelectsIngress
		if dir == "egress" {
			sel = p.SelectsEgress
		}
		if sel && p.Selector.Matches(labels) {
			names = append(names, p.Name)
			keys = append(keys, fmt.Sprintf("%d/%s", i, dir))
		}
	}
	if len(names) == 0 {
		if w.intent.Default == Deny {
			return wlDenyChain, nil
		}
		return "", nil
	}
	name := "wl" + dir[:1] + "-" + shortHash(append([]string{dir}, names...)...)
	if p := w.profiles[name]; p != nil {
		p.refs++
		return name, nil
	}
	p := &profile{refs: 1, dir: dir, names: names, keys: keys}
	if err := w.setProfileChain(name, p); err != nil {
		return "", fmt.Errorf("profile of %s: %w", strings.Join(names, ","), err)
	}
	w.profiles[name] = p
	return name, nil
}

// setProfileChain gives the Table profile p's chain unless its desired
// state has that chain already: after a recompile most profiles are
// unchanged, and each chain set is hashed and compared rule by rule at
// the next Apply.
func (w *workload) setProfileChain(name string, p *profile) error {
	c := w.profileChain(name, p)
	if old := w.tb.chains[name]; old != nil && old.Hook == nil && reflect.DeepEqual(old.Rules, c.Rules) {
		return nil
	}
	return w.tb.SetChain(c)
}

// profileChain is the chain of profile p: its policies' rules in order,
// then the counted drop of what none allowed.
func (w *workload) profileChain(name string, p *profile) Chain {
	c := Chain{Name: name}
	for _, k := range p.keys {
		c.Rules = append(c.Rules, w.rules[k]...)
	}
	c.Rules = append(c.Rules, dropRule(p.dir+" default deny: "+strings.Join(p.names, ",")))
	return c
}

// release drops a reference to the profile chain name; the last one
// deletes the chain.
func (w *workload) release(name string) {
	p := w.profiles[name]
	if p == nil {
		return
	}
	if p.refs--; p.refs == 0 {
		delete(w.profiles, name)
		if w.quiet {
			w.parked[name] = true
			return
		}
		w.tb.DeleteChain(name)
	}
}

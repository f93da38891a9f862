package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// The AFT is read with a Subscribe ONCE (PROTO), which the server sends
// in batches, and decoded leaf by leaf by path, not through the ygot
// structs: ygot's reflection over a hundred thousand entries would cost
// more than all the rest (BenchmarkShowRoute100k).

// routeQuery is show route's argument: a prefix (that entry), an
// address (the longest prefix holding it) or neither (every route).
type routeQuery struct {
	prefix netip.Prefix
	addr   netip.Addr
}

func parseRouteQuery(s string) (routeQuery, error) {
	if s == "" {
		return routeQuery{}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return routeQuery{}, fmt.Errorf("route %q: %v", s, err)
		}
		return routeQuery{prefix: p.Masked()}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return routeQuery{}, fmt.Errorf("route %q: not a prefix or an address", s)
	}
	return routeQuery{addr: a.Unmap()}, nil
}

// afts is what show route needs of the AFT.
type afts struct {
	entries map[netip.Prefix]*aftEntry
	groups  map[uint64]map[uint64]uint64 // next-hop-group id → next-hop index → weight (0: unset)
	hops    map[uint64]*aftHop
}

type aftEntry struct {
	group  uint64
	hasNHG bool
	origin string
	hw     [3]bool // offloaded, trap, offload-failed (state/hardware)
}

// hwFlags are the hardware leaves of an entry, by their names in the
// AFT and as iproute2 prints them.
var hwFlags = [3]struct{ leaf, name string }{
	{"state/hardware/offloaded", "offload"}, {"state/hardware/trap", "trap"}, {"state/hardware/offload-failed", "offload_failed"},
}

type aftHop struct {
	ip, iface string
}

func newAFTs() *afts {
	return &afts{entries: map[netip.Prefix]*aftEntry{}, groups: map[uint64]map[uint64]uint64{}, hops: map[uint64]*aftHop{}}
}

// add decodes the AFT leaves of a notification; others are ignored.
func (a *afts) add(n *gpb.Notification) {
	pre := n.GetPrefix().GetElem()
	for _, u := range n.GetUpdate() {
		elems := append(pre[:len(pre):len(pre)], u.GetPath().GetElem()...)
		a.addLeaf(elems, u.GetVal())
	}
}

func (a *afts) addLeaf(elems []*gpb.PathElem, v *gpb.TypedValue) {
	i := slices.IndexFunc(elems, func(e *gpb.PathElem) bool { return e.GetName() == "afts" })
	if i < 0 {
		return
	}
	r := names(elems[i+1:])
	switch {
	case len(r) >= 2 && (r[0] == "ipv4-unicast" || r[0] == "ipv6-unicast"):
		p, err := netip.ParsePrefix(elems[i+2].GetKey()["prefix"])
		if err != nil {
			return
		}
		e := entryFor(a.entries, p)
		switch strings.Join(r[2:], "/") {
		case "state/next-hop-group":
			e.group, e.hasNHG = typedUint(v)
		case "state/origin-protocol":
			e.origin = identityName(v.GetStringVal())
		default:
			for i, f := range hwFlags {
				if strings.Join(r[2:], "/") == f.leaf {
					e.hw[i] = v.GetBoolVal()
				}
			}
		}
	case len(r) >= 4 && r[0] == "next-hop-groups" && r[2] == "next-hops":
		id, err1 := strconv.ParseUint(elems[i+2].GetKey()["id"], 10, 64)
		idx, err2 := strconv.ParseUint(elems[i+4].GetKey()["index"], 10, 64)
		if err1 != nil || err2 != nil {
			return
		}
		g := a.groups[id]
		if g == nil {
			g = map[uint64]uint64{}
			a.groups[id] = g
		}
		w := g[idx] // a member without a weight leaf is still one
		if strings.Join(r[4:], "/") == "state/weight" {
			w, _ = typedUint(v)
		}
		g[idx] = w
	case len(r) >= 2 && r[0] == "next-hops":
		idx, err := strconv.ParseUint(elems[i+2].GetKey()["index"], 10, 64)
		if err != nil {
			return
		}
		h := entryFor(a.hops, idx)
		switch strings.Join(r[2:], "/") {
		case "state/ip-address":
			h.ip = v.GetStringVal()
		case "interface-ref/state/interface":
			h.iface = v.GetStringVal()
		}
	}
}

// entryFor is m[k], made if missing.
func entryFor[K comparable, V any](m map[K]*V, k K) *V {
	v := m[k]
	if v == nil {
		v = new(V)
		m[k] = v
	}
	return v
}

func names(elems []*gpb.PathElem) []string {
	out := make([]string, len(elems))
	for i, e := range elems {
		out[i] = e.GetName()
	}
	return out
}

// typedUint is an integer leaf's value, whatever integer type it came in.
func typedUint(v *gpb.TypedValue) (uint64, bool) {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_UintVal:
		return x.UintVal, true
	case *gpb.TypedValue_IntVal:
		return uint64(x.IntVal), x.IntVal >= 0
	case *gpb.TypedValue_StringVal:
		u, err := strconv.ParseUint(x.StringVal, 10, 64)
		return u, err == nil
	}
	return 0, false
}

// identityName is an identityref without its module
// ("openconfig-policy-types:BGP" → "BGP").
func identityName(s string) string {
	if _, after, ok := strings.Cut(s, ":"); ok {
		return after
	}
	return s
}

// route is one row of show route, and its JSON.
type route struct {
	Prefix   string     `json:"prefix"`
	Origin   *string    `json:"origin"`
	NextHops []routeHop `json:"next-hops"`
	// Hardware is what a switchdev driver says of the route, as
	// iproute2 prints it: offload, trap, offload_failed.
	Hardware []string `json:"hardware,omitempty"`
}

type routeHop struct {
	IPAddress *string `json:"ip-address"`
	Interface *string `json:"interface"`
	Weight    *uint64 `json:"weight"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// routes resolves the entries q selects to their next hops, IPv4 before
// IPv6, each in prefix order. An entry whose group is not (yet) in the
// AFT has no next hops.
func (a *afts) routes(q routeQuery) []route {
	var ps []netip.Prefix
	switch {
	case q.prefix.IsValid():
		if _, ok := a.entries[q.prefix]; ok {
			ps = append(ps, q.prefix)
		}
	case q.addr.IsValid():
		best := netip.Prefix{}
		for p := range a.entries {
			if p.Contains(q.addr) && (!best.IsValid() || p.Bits() > best.Bits()) {
				best = p
			}
		}
		if best.IsValid() {
			ps = append(ps, best)
		}
	default:
		for p := range a.entries {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return x.Bits() - y.Bits()
	})
	out := make([]route, 0, len(ps))
	for _, p := range ps {
		e := a.entries[p]
		r := route{Prefix: p.String(), Origin: strOrNil(e.origin), NextHops: []routeHop{}}
		for i, f := range hwFlags {
			if e.hw[i] {
				r.Hardware = append(r.Hardware, f.name)
			}
		}
		if e.hasNHG {
			g := a.groups[e.group]
			for _, idx := range slices.Sorted(maps.Keys(g)) {
				h := routeHop{}
				if nh := a.hops[idx]; nh != nil {
					h.IPAddress, h.Interface = strOrNil(nh.ip), strOrNil(nh.iface)
				}
				if w := g[idx]; w != 0 {
					h.Weight = &w
				}
				r.NextHops = append(r.NextHops, h)
			}
		}
		out = append(out, r)
	}
	return out
}

// routeTable is routes as a table, one line per next hop, the prefix and
// origin on the first; a route without next hops has one line of
// dashes. A Hardware column (offload, trap, offload_failed, as iproute2
// marks routes) is there when a driver flagged some route.
func routeTable(rs []route) *table {
	hw := slices.ContainsFunc(rs, func(r route) bool { return len(r.Hardware) > 0 })
	cols := []string{"Prefix", "Origin", "Next hop", "Interface", "Weight"}
	if hw {
		cols = append(cols, "Hardware")
	}
	t := newTable(cols...)
	add := func(vals ...any) {
		if !hw {
			vals = vals[:len(vals)-1]
		}
		t.add(vals...)
	}
	for _, r := range rs {
		var origin any
		if r.Origin != nil {
			origin = strings.ToLower(*r.Origin)
		}
		if len(r.NextHops) == 0 {
			add(r.Prefix, origin, nil, nil, nil, r.Hardware)
		}
		for i, h := range r.NextHops {
			if i > 0 {
				add(blank{}, blank{}, h.IPAddress, h.Interface, h.Weight, blank{})
				continue
			}
			add(r.Prefix, origin, h.IPAddress, h.Interface, h.Weight, r.Hardware)
		}
	}
	return t
}

// blank is a cell left empty: a route's next lines under its prefix.
type blank struct{}

func (blank) String() string { return "" }

// aftPaths are the parts of the AFT q needs: the entry it names, or the
// entries of its family, or all; with the next-hop groups and next hops
// (few next to the entries: ECMP sets are shared).
func aftPaths(q routeQuery) []string {
	fam := func(a netip.Addr) string {
		if a.Is4() {
			return aftPath + "/ipv4-unicast"
		}
		return aftPath + "/ipv6-unicast"
	}
	var ps []string
	switch {
	case q.prefix.IsValid():
		e := "/ipv4-entry"
		if !q.prefix.Addr().Is4() {
			e = "/ipv6-entry"
		}
		ps = append(ps, fam(q.prefix.Addr())+e+"[prefix="+q.prefix.String()+"]")
	case q.addr.IsValid():
		ps = append(ps, fam(q.addr))
	default:
		ps = append(ps, aftPath+"/ipv4-unicast", aftPath+"/ipv6-unicast")
	}
	return append(ps, aftPath+"/next-hop-groups", aftPath+"/next-hops")
}

func showRoute(q routeQuery) showFunc {
	return func(ctx context.Context, c *daemonClient, o showOutput) error {
		a := newAFTs()
		if err := c.once(ctx, a.add, aftPaths(q)...); err != nil {
			return err
		}
		rs := a.routes(q)
		if (q.prefix.IsValid() || q.addr.IsValid()) && len(rs) == 0 {
			return fmt.Errorf("no route to %v", q)
		}
		if o.json {
			b, err := json.MarshalIndent(rs, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(o.w, "%s\n", b)
			return err
		}
		return routeTable(rs).write(o.w)
	}
}

func (q routeQuery) String() string {
	if q.prefix.IsValid() {
		return q.prefix.String()
	}
	return q.addr.String()
}

package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bgp"
)

// Well-known paths, as path values to extend.
var (
	niPath = path{{name: "network-instances"}, {name: "network-instance"}}
)

func niEntry(name string) path {
	return niPath[:1].entry("network-instance", []kv{{"name", name}})
}

func protoEntry(ni path, p *oc.NetworkInstance_Protocol) path {
	return ni.child("protocols").entry("protocol", []kv{{"identifier", enumName(p.Identifier)}, {"name", p.GetName()}})
}

func enumName(e interface{ String() string }) string { return e.String() }

// Translate runs switchd's semantic checks on a schema-valid tree and
// translates it into an Intent.
func Translate(dev *oc.Device) (*Intent, error) {
	t := &translator{rp: dev.RoutingPolicy}
	in := &Intent{Device: dev}
	t.intent(dev, in)
	t.workloads(dev.Switchd, in)
	t.dataplane(dev.Switchd, in)
	t.workloadPolicy(dev.Switchd, in)
	t.acl(dev, in)
	t.metrics(dev.Switchd, in)
	t.kubernetes(dev.Switchd, in)
	t.grpc(dev.System, in)
	t.interfaces(dev, in)
	t.bfd(dev, in) // after BGP and interfaces: it reads both
	// The speaker's own checks, so that check, run and reload refuse what
	// Apply would; its rules are checked there only, and bgpErrors puts
	// what they find at OpenConfig paths.
	if t.bgpPath != nil {
		t.bgpErrors(bgp.Validate(in.BGP))
	}
	if len(t.list) > 0 {
		return nil, sortErrors(t.list)
	}
	return in, nil
}

type translator struct {
	errs
	rp      *oc.RoutingPolicy // for BGP neighbors' apply-policy
	bgpPath path              // the BGP protocol's bgp container, if configured
	// neighbors locates each translated neighbor's leaves, for bgpErrors.
	neighbors map[netip.Addr]*neighborPaths
}

// originSet records which families of locally configured prefixes a table
// connection sends into BGP.
type originKey struct {
	src oc.E_PolicyTypes_INSTALL_PROTOCOL_TYPE
	af  oc.E_Types_ADDRESS_FAMILY
}

func (t *translator) intent(dev *oc.Device, in *Intent) {
	var def *oc.NetworkInstance
	for _, name := range sortedKeys(dev.NetworkInstance) {
		ni := dev.NetworkInstance[name]
		p := niEntry(name)
		if ni.Type != oc.NetworkInstanceTypes_NETWORK_INSTANCE_TYPE_DEFAULT_INSTANCE {
			t.add(p.child("config").child("type"), "switchd serves only the network instance of type DEFAULT_INSTANCE")
			continue
		}
		if def != nil {
			t.add(p, fmt.Sprintf("a second DEFAULT_INSTANCE network instance (the first is %q)", def.GetName()))
			continue
		}
		def = ni
	}
	if def == nil {
		return
	}
	ni := niEntry(def.GetName())

	var bgpProto *oc.NetworkInstance_Protocol
	var routes []routeSrc
	keys := make([]oc.NetworkInstance_Protocol_Key, 0, len(def.Protocol))
	for k := range def.Protocol {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Identifier != keys[j].Identifier {
			return keys[i].Identifier < keys[j].Identifier
		}
		return keys[i].Name < keys[j].Name
	})
	for _, k := range keys {
		pr := def.Protocol[k]
		pp := protoEntry(ni, pr)
		if pr.Bgp != nil && k.Identifier != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_BGP {
			t.add(pp.child("bgp"), "bgp belongs under a protocol with identifier BGP")
		}
		if len(pr.Static) > 0 && k.Identifier != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_STATIC {
			t.add(pp.child("static-routes"), "static-routes belong under a protocol with identifier STATIC")
		}
		if len(pr.Aggregate) > 0 && k.Identifier != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_LOCAL_AGGREGATE {
			t.add(pp.child("local-aggregates"), "local-aggregates belong under a protocol with identifier LOCAL_AGGREGATE")
		}
		switch k.Identifier {
		case oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_BGP:
			if bgpProto != nil {
				t.add(pp, fmt.Sprintf("a second BGP protocol (the first is %q); switchd runs one BGP instance", bgpProto.GetName()))
				continue
			}
			bgpProto = pr
		case oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_STATIC:
			routes = append(routes, t.staticRoutes(pr, pp)...)
		case oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_LOCAL_AGGREGATE:
			routes = append(routes, t.aggregates(pr, pp)...)
		case oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_DIRECTLY_CONNECTED:
			// Connected routes are the kernel's; the entry only names them
			// (for table connections).
		default:
			t.add(pp, fmt.Sprintf("protocol %s is not supported by switchd (BGP, STATIC, LOCAL_AGGREGATE are)", enumName(k.Identifier)))
		}
	}

	// Routes for the FIB, one per prefix.
	seen := map[netip.Prefix]path{}
	for _, r := range routes {
		if prev, dup := seen[r.prefix]; dup {
			t.add(r.p, fmt.Sprintf("prefix %v is also configured at %v", r.prefix, prev))
			continue
		}
		seen[r.prefix] = r.p
		if r.route != nil {
			in.Routes = append(in.Routes, *r.route)
		}
	}
	sort.Slice(in.Routes, func(i, j int) bool { return comparePrefix(in.Routes[i].Key.Dst, in.Routes[j].Key.Dst) < 0 })

	origin := t.tableConnections(def, ni, bgpProto != nil)
	if bgpProto == nil {
		return
	}
	t.bgpPath = protoEntry(ni, bgpProto).child("bgp")
	t.bgp(bgpProto, t.bgpPath, &in.BGP)
	originated := make(map[netip.Prefix]bool, len(routes)) // a set: configs have 50,000 prefixes
	for _, r := range routes {
		af := oc.Types_ADDRESS_FAMILY_IPV4
		if r.prefix.Addr().Is6() {
			af = oc.Types_ADDRESS_FAMILY_IPV6
		}
		if origin[originKey{r.src, af}] && !originated[r.prefix] {
			originated[r.prefix] = true
			in.BGP.Originate = append(in.BGP.Originate, r.prefix)
		}
	}
	slices.SortFunc(in.BGP.Originate, comparePrefix)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// tableConnections returns which sources of locally configured prefixes are
// redistributed into BGP. That is all switchd does with table connections.
func (t *translator) tableConnections(ni *oc.NetworkInstance, p path, haveBGP bool) map[originKey]bool {
	out := map[originKey]bool{}
	keys := make([]oc.NetworkInstance_TableConnection_Key, 0, len(ni.TableConnection))
	for k := range ni.TableConnection {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		tp := p.child("table-connections").entry("table-connection", []kv{
			{"src-protocol", enumName(k.SrcProtocol)}, {"dst-protocol", enumName(k.DstProtocol)}, {"address-family", enumName(k.AddressFamily)}})
		switch {
		case k.DstProtocol != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_BGP,
			k.SrcProtocol != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_STATIC && k.SrcProtocol != oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_LOCAL_AGGREGATE,
			k.AddressFamily != oc.Types_ADDRESS_FAMILY_IPV4 && k.AddressFamily != oc.Types_ADDRESS_FAMILY_IPV6:
			t.add(tp, "not supported: switchd connects only STATIC and LOCAL_AGGREGATE into BGP, for IPV4 and IPV6")
			continue
		case !haveBGP:
			t.add(tp, "connects into BGP, but no BGP protocol is configured")
			continue
		}
		out[originKey{k.SrcProtocol, k.AddressFamily}] = true
	}
	return out
}

// routeSrc is a locally configured prefix: a static route or an aggregate,
// with its FIB route if it has one.
type routeSrc struct {
	src    oc.E_PolicyTypes_INSTALL_PROTOCOL_TYPE
	prefix netip.Prefix
	p      path
	route  *fib.Route
}

func (t *translator) prefix(s string, p path) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		t.add(p, fmt.Sprintf("invalid prefix %q: %v", s, err))
		return pfx, false
	}
	if pfx.Masked() != pfx {
		t.add(p, fmt.Sprintf("prefix %v has host bits set (did you mean %v?)", pfx, pfx.Masked()))
		return pfx, false
	}
	return pfx, true
}

func (t *translator) staticRoutes(pr *oc.NetworkInstance_Protocol, pp path) []routeSrc {
	var out []routeSrc
	for _, name := range sortedKeys(pr.Static) {
		st := pr.Static[name]
		sp := pp.child("static-routes").entry("static", []kv{{"prefix", name}})
		pfx, ok := t.prefix(name, sp.child("config").child("prefix"))
		if !ok {
			continue
		}
		if len(st.NextHop) == 0 {
			t.add(sp.child("next-hops"), "static route has no next hop")
			continue
		}
		r := &fib.Route{Key: fib.RouteKey{Table: fib.MainTable, Dst: pfx}}
		var drop, metricSet bool
		var metric uint32
		good := true
		for _, idx := range sortedKeys(st.NextHop) {
			nh := st.NextHop[idx]
			np := sp.child("next-hops").entry("next-hop", []kv{{"index", idx}})
			if nh.InterfaceRef != nil {
				t.add(np.child("interface-ref"), "interface-ref is not supported: give the gateway address")
				good = false
			}
			if nh.Metric != nil {
				if metricSet && *nh.Metric != metric {
					t.add(np.child("config").child("metric"), "next hops of one static route must share one metric (the kernel's metric is per route)")
					good = false
				}
				metric, metricSet = *nh.Metric, true
			}
			switch v := nh.NextHop.(type) {
			case oc.E_LocalRouting_LOCAL_DEFINED_NEXT_HOP:
				if v == oc.LocalRouting_LOCAL_DEFINED_NEXT_HOP_DROP {
					drop = true
					continue
				}
				t.add(np.child("config").child("next-hop"), fmt.Sprintf("next hop %s is not supported: give the gateway address or DROP", enumName(v)))
				good = false
			case oc.UnionString:
				gw, err := netip.ParseAddr(string(v))
				if err != nil {
					t.add(np.child("config").child("next-hop"), fmt.Sprintf("invalid next hop %q: %v", string(v), err))
					good = false
					continue
				}
				r.NextHops = append(r.NextHops, fib.NextHop{Gateway: gw})
			case nil:
				t.add(np.child("config").child("next-hop"), "next hop has no next-hop address")
				good = false
			}
		}
		if drop && len(r.NextHops) > 0 {
			t.add(sp.child("next-hops"), "DROP cannot be combined with gateway next hops")
			good = false
		}
		if !good {
			continue
		}
		if drop {
			r.Type = fib.Blackhole
		}
		r.Key.Priority = int(metric)
		r.Normalize()
		out = append(out, routeSrc{src: oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_STATIC, prefix: pfx, p: sp, route: r})
	}
	return out
}

func (t *translator) aggregates(pr *oc.NetworkInstance_Protocol, pp path) []routeSrc {
	var out []routeSrc
	for _, name := range sortedKeys(pr.Aggregate) {
		ag := pr.Aggregate[name]
		ap := pp.child("local-aggregates").entry("aggregate", []kv{{"prefix", name}})
		pfx, ok := t.prefix(name, ap.child("config").child("prefix"))
		if !ok {
			continue
		}
		rs := routeSrc{src: oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_LOCAL_AGGREGATE, prefix: pfx, p: ap}
		// A discarding aggregate is a blackhole route, so traffic to
		// unallocated parts of it stops here instead of following a
		// default route.
		if ag.GetDiscard() {
			rs.route = &fib.Route{Key: fib.RouteKey{Table: fib.MainTable, Dst: pfx}, Type: fib.Blackhole}
			rs.route.Normalize()
		}
		out = append(out, rs)
	}
	return out
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func seconds(s uint16) time.Duration { return time.Duration(s) * time.Second }

package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/switchd/switchd/models/oc"
	"github.com/switchd/switchd/switchd/bfd"
	"github.com/switchd/switchd/switchd/bgp"
)

// BFDSession is one BFD session the config asks for (RFC 5880) and what
// it protects: the daemon takes a Down to the BGP neighbors (their
// sessions end at once) and to the FIB (the peer stops being a next hop).
type BFDSession struct {
	bfd.PeerConfig
	// Neighbors are the BGP neighbors whose liveness it tells: those with
	// enable-bfd on themselves or their peer group.
	Neighbors []netip.Addr
	// Static is true if static routes' next hops with enable-bfd use it.
	Static bool
	// Discover marks the session of a BGP neighbor given by interface
	// (bgp/interface-neighbors): its peer is the link-local address the
	// speaker discovers on Interface, which no config names. Peer is
	// fe80:: and Neighbors the neighbor's name until discovered
	// (fe80::%IF); the daemon runs the session to the discovered address
	// the neighbor feed reports (fe80::x%IF) instead, and follows it.
	Discover bool
}

// DiscoverPeer is the Peer of a Discover session: fe80::, which is no
// peer's address (the link's subnet-router anycast address).
var DiscoverPeer = netip.MustParseAddr("fe80::")

// How a BGP neighbor's or static next hop's BFD session is chosen:
//   - a neighbor on an interface (unnumbered) or an eBGP neighbor without
//     ebgp-multihop is directly connected: single hop (RFC 5881), bound
//     to the configured interface whose subnet holds the address if there
//     is one (else to none: the kernel routes it);
//   - an iBGP neighbor in a configured interface's subnet likewise;
//   - any other neighbor (iBGP over loopbacks, ebgp-multihop) is
//     multihop (RFC 5883) from its transport address, which it must have;
//   - a neighbor given by interface gets a template (Discover): single
//     hop on that interface to the peer's link-local address, once the
//     speaker has discovered it;
//   - a static route's gateway is single hop.
//
// Timers come from the neighbor's enable-bfd, else its peer group's, else
// the /bfd/interfaces/interface whose interface-ref names the session's
// interface, else the engine's defaults (FRR's: 300 ms × 3). A
// /bfd/interfaces/interface with enabled false holds its sessions in
// AdminDown (the peers are told, and keep what BFD protects up).

// bfdTimers are the three timers of one enable-bfd or /bfd interface,
// each with the path it came from.
type bfdTimers struct {
	tx, rx   *uint32
	mult     *uint8
	txp, rxp path
	multp    path
}

// bfdIface is one /bfd/interfaces/interface entry.
type bfdIface struct {
	bfdTimers
	p       path
	enabled bool
}

// bfdSrc is a session being built, with the paths of its leaves by
// bfd.FieldError.Field.
type bfdSrc struct {
	s  BFDSession
	at map[string]path
}

func (t *translator) bfd(dev *oc.Device, in *Intent) {
	ifaces := t.bfdInterfaces(dev)
	var srcs []*bfdSrc
	byKey := map[bfd.Key]*bfdSrc{}
	add := func(src *bfdSrc) {
		cfg := &src.s.PeerConfig
		if ifc, ok := ifaces[cfg.Interface]; ok && cfg.Interface != "" {
			t.inheritTimers(src, ifc.bfdTimers)
			cfg.AdminDown = !ifc.enabled
		}
		if prev, ok := byKey[cfg.Key()]; ok {
			pc := prev.s.PeerConfig
			if pc.DesiredMinTx != cfg.DesiredMinTx || pc.RequiredMinRx != cfg.RequiredMinRx || pc.DetectMult != cfg.DetectMult {
				t.add(src.at["Peer"], fmt.Sprintf("BFD session %v is also configured at %v with other timers", cfg.Key(), prev.at["Peer"]))
				return
			}
			prev.s.Neighbors = append(prev.s.Neighbors, src.s.Neighbors...)
			prev.s.Static = prev.s.Static || src.s.Static
			return
		}
		byKey[cfg.Key()] = src
		srcs = append(srcs, src)
	}
	def, ni := defaultInstance(dev)
	if def != nil {
		for _, k := range sortedProtocolKeys(def) {
			pr := def.Protocol[k]
			pp := protoEntry(ni, pr)
			switch k.Identifier {
			case oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_BGP:
				if pr.Bgp != nil {
					t.bgpBFD(pr.Bgp, pp.child("bgp"), in, add)
				}
			case oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_STATIC:
				t.staticBFD(pr, pp, in, add)
			}
		}
	}
	for _, src := range srcs {
		t.bfdErrors(src, src.s.Validate())
		slices.SortFunc(src.s.Neighbors, netip.Addr.Compare)
		in.BFD = append(in.BFD, src.s)
	}
}

// defaultInstance is the first DEFAULT_INSTANCE network instance and its
// path (intent reports a second one).
func defaultInstance(dev *oc.Device) (*oc.NetworkInstance, path) {
	for _, name := range sortedKeys(dev.NetworkInstance) {
		if ni := dev.NetworkInstance[name]; ni.Type == oc.NetworkInstanceTypes_NETWORK_INSTANCE_TYPE_DEFAULT_INSTANCE {
			return ni, niEntry(name)
		}
	}
	return nil, nil
}

func sortedProtocolKeys(ni *oc.NetworkInstance) []oc.NetworkInstance_Protocol_Key {
	keys := make([]oc.NetworkInstance_Protocol_Key, 0, len(ni.Protocol))
	for k := range ni.Protocol {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b oc.NetworkInstance_Protocol_Key) int {
		if a.Identifier != b.Identifier {
			return int(a.Identifier) - int(b.Identifier)
		}
		return cmpString(a.Name, b.Name)
	})
	return keys
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bfdInterfaces reads /bfd/interfaces/interface by the kernel name its
// interface-ref gives.
func (t *translator) bfdInterfaces(dev *oc.Device) map[string]bfdIface {
	out := map[string]bfdIface{}
	if dev.Bfd == nil {
		return out
	}
	base := path{{name: "bfd"}, {name: "interfaces"}}
	for _, id := range sortedKeys(dev.Bfd.Interface) {
		ifc := dev.Bfd.Interface[id]
		p := base.entry("interface", []kv{{"id", id}})
		name := ifc.GetInterfaceRef().GetInterface()
		refp := p.child("interface-ref").child("config").child("interface")
		if name == "" {
			t.add(refp, "a BFD interface needs interface-ref: the kernel name of the link its sessions run on")
			continue
		}
		if ifc.GetInterfaceRef().Subinterface != nil {
			t.add(p.child("interface-ref").child("config").child("subinterface"), "only subinterface 0, the interface itself, is supported: leave subinterface out")
		}
		if prev, dup := out[name]; dup {
			t.add(refp, fmt.Sprintf("interface %q also has BFD settings at %v", name, prev.p))
			continue
		}
		cp := p.child("config")
		out[name] = bfdIface{p: p, enabled: ifc.Enabled == nil || *ifc.Enabled, bfdTimers: bfdTimers{
			tx: ifc.DesiredMinimumTxInterval, rx: ifc.RequiredMinimumReceive, mult: ifc.DetectionMultiplier,
			txp: cp.child("desired-minimum-tx-interval"), rxp: cp.child("required-minimum-receive"), multp: cp.child("detection-multiplier"),
		}}
	}
	return out
}

// enableBFD is an enable-bfd container: whether it is on, and its timers.
func enableBFD(p path, enabled *bool, tx, rx *uint32, mult *uint8) (*bool, bfdTimers) {
	cp := p.child("enable-bfd").child("config")
	return enabled, bfdTimers{tx: tx, rx: rx, mult: mult,
		txp: cp.child("desired-minimum-tx-interval"), rxp: cp.child("required-minimum-receive"), multp: cp.child("detection-multiplier")}
}

// inheritTimers sets the timers src does not have yet from tm.
func (t *translator) inheritTimers(src *bfdSrc, tm bfdTimers) {
	cfg := &src.s.PeerConfig
	us := func(v *uint32, p path, field string, d *time.Duration) {
		if v == nil || *d != 0 || src.at[field] != nil {
			return
		}
		src.at[field] = p
		if *v == 0 {
			t.add(p, "0 is reserved (RFC 5880 §4.1): give the interval in microseconds")
			return
		}
		*d = time.Duration(*v) * time.Microsecond
	}
	us(tm.tx, tm.txp, "DesiredMinTx", &cfg.DesiredMinTx)
	us(tm.rx, tm.rxp, "RequiredMinRx", &cfg.RequiredMinRx)
	if tm.mult != nil && cfg.DetectMult == 0 {
		cfg.DetectMult = *tm.mult
		src.at["DetectMult"] = tm.multp
	}
}

// bgpBFD makes a session for each translated neighbor with enable-bfd on
// itself or its peer group.
func (t *translator) bgpBFD(b *oc.NetworkInstance_Protocol_Bgp, p path, in *Intent, add func(*bfdSrc)) {
	// The translated neighbors by the oc entry they came from.
	nbs := make(map[netip.Addr]bgp.Neighbor, len(in.BGP.Neighbors))
	for _, nb := range in.BGP.Neighbors {
		nbs[nb.Address] = nb
	}
	group := func(name *string) (*bool, bfdTimers) {
		pg := b.PeerGroup[deref(name)]
		if name == nil || pg == nil || pg.EnableBfd == nil {
			return nil, bfdTimers{}
		}
		e := pg.EnableBfd
		return enableBFD(p.child("peer-groups").entry("peer-group", []kv{{"peer-group-name", *name}}),
			e.Enabled, e.DesiredMinimumTxInterval, e.RequiredMinimumReceive, e.DetectionMultiplier)
	}
	for _, key := range sortedKeys(b.Neighbor) {
		n := b.Neighbor[key]
		np := p.child("neighbors").entry("neighbor", []kv{{"neighbor-address", key}})
		a, err := netip.ParseAddr(key)
		if err != nil {
			continue // reported by the BGP translation
		}
		nb, ok := nbs[a]
		if !ok {
			continue
		}
		var on *bool
		var own bfdTimers
		if e := n.EnableBfd; e != nil {
			on, own = enableBFD(np, e.Enabled, e.DesiredMinimumTxInterval, e.RequiredMinimumReceive, e.DetectionMultiplier)
		}
		gon, gtm := group(n.PeerGroup)
		if on == nil {
			on = gon
		}
		if on == nil || !*on {
			continue
		}
		src := t.neighborBFD(nb, in, np)
		if src == nil {
			continue
		}
		t.inheritTimers(src, own)
		t.inheritTimers(src, gtm)
		add(src)
	}
	// Neighbors by interface take BFD from their peer group (they have
	// no enable-bfd of their own).
	for _, name := range sortedKeys(b.InterfaceNeighbor) {
		on, gtm := group(b.InterfaceNeighbor[name].PeerGroup)
		nb, ok := nbs[DiscoverPeer.WithZone(name)]
		if on == nil || !*on || !ok {
			continue
		}
		ifp := p.child("interface-neighbors").entry("interface-neighbor", []kv{{"interface", name}}).child("config").child("interface")
		src := &bfdSrc{s: BFDSession{Neighbors: []netip.Addr{nb.Address}, Discover: true},
			at: map[string]path{"Peer": ifp, "Local": ifp, "Interface": ifp, "MinTTL": ifp}}
		src.s.Peer, src.s.Interface = DiscoverPeer, name
		t.inheritTimers(src, gtm)
		add(src)
	}
}

// neighborBFD is the session of neighbor nb (at np) before its timers.
func (t *translator) neighborBFD(nb bgp.Neighbor, in *Intent, np path) *bfdSrc {
	tp := np.child("transport").child("config").child("local-address")
	// The speaker names a neighbor on an interface with the interface
	// as zone: HoldForBFD takes that name.
	name := nb.Address
	if nb.Interface != "" && name.Is6() && name.IsLinkLocalUnicast() {
		name = name.WithZone(nb.Interface)
	}
	src := &bfdSrc{s: BFDSession{Neighbors: []netip.Addr{name}}, at: map[string]path{
		"Peer": np.child("config").child("neighbor-address"), "Local": tp, "Interface": tp, "MinTTL": np,
	}}
	cfg := &src.s.PeerConfig
	cfg.Peer = nb.Address.WithZone("")
	localAS := nb.LocalAS
	if localAS == 0 {
		localAS = in.BGP.ASN
	}
	link := nb.Interface
	if link == "" {
		link = connectedLink(in, cfg.Peer)
	}
	switch {
	case nb.Interface != "" || (nb.PeerAS != localAS && nb.MultihopTTL == 0) || (link != "" && nb.MultihopTTL == 0):
		cfg.Interface = link
		cfg.Local = nb.LocalAddress
	default:
		cfg.Multihop = true
		if !nb.LocalAddress.IsValid() {
			t.add(tp, "a multihop BFD session (iBGP over loopbacks, ebgp-multihop) runs from the transport address: set local-address")
			return nil
		}
		cfg.Local = nb.LocalAddress
	}
	return src
}

// connectedLink is the configured interface whose subnet holds a, if any.
func connectedLink(in *Intent, a netip.Addr) string {
	for _, ifc := range in.Interfaces {
		for _, p := range ifc.Addrs {
			if p.Masked().Contains(a) && p.Addr() != a {
				return ifc.Name
			}
		}
	}
	return ""
}

// staticBFD makes a single-hop session to each static route gateway with
// enable-bfd.
func (t *translator) staticBFD(pr *oc.NetworkInstance_Protocol, pp path, in *Intent, add func(*bfdSrc)) {
	for _, name := range sortedKeys(pr.Static) {
		st := pr.Static[name]
		sp := pp.child("static-routes").entry("static", []kv{{"prefix", name}})
		for _, idx := range sortedKeys(st.NextHop) {
			nh := st.NextHop[idx]
			e := nh.EnableBfd
			if e == nil || !e.GetEnabled() {
				continue
			}
			np := sp.child("next-hops").entry("next-hop", []kv{{"index", idx}})
			nhp := np.child("config").child("next-hop")
			v, ok := nh.NextHop.(oc.UnionString)
			gw, err := netip.ParseAddr(string(v))
			if !ok || err != nil {
				t.add(np.child("enable-bfd").child("config").child("enabled"), "BFD needs a gateway address as next hop")
				continue
			}
			src := &bfdSrc{s: BFDSession{Static: true}, at: map[string]path{"Peer": nhp, "Local": nhp, "Interface": nhp, "MinTTL": nhp}}
			src.s.Peer = gw
			src.s.Interface = connectedLink(in, gw)
			_, tm := enableBFD(np, e.Enabled, e.DesiredMinimumTxInterval, e.RequiredMinimumReceive, e.DetectionMultiplier)
			t.inheritTimers(src, tm)
			add(src)
		}
	}
}

// bfdErrors puts the engine's refusals of a session at the leaves its
// fields came from.
func (t *translator) bfdErrors(src *bfdSrc, err error) {
	if err == nil {
		return
	}
	var fields []*bfd.FieldError
	var others []error
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *bfd.FieldError
		if errors.As(e, &fe) {
			fields = append(fields, fe)
		} else {
			others = append(others, e)
		}
	}
	for _, fe := range fields {
		p := src.at[fe.Field]
		if p == nil {
			p = src.at["Peer"]
		}
		t.add(p, "BFD: "+fe.Reason)
	}
	for _, o := range others {
		t.add(src.at["Peer"], "BFD: "+o.Error())
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

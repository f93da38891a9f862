package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/models/oc"
)

// Workloads is what the host component needs from the tree: where it keeps
// its records, the pools it allocates from, the static prefixes fixed
// addresses outside the pools may come from and the VMs given in config.
type Workloads struct {
	StateDir       string
	Pools          []host.Pool
	StaticPrefixes []netip.Prefix
	VMs            []host.VMRequest
}

var switchdPath = path{{name: "switchd"}}

// workloads translates /switchd (the project's own module).
func (t *translator) workloads(sd *oc.Switchd, in *Intent) {
	if sd == nil {
		return
	}
	w := &in.Workloads
	w.StateDir = sd.GetStateDir()

	poolsPath := switchdPath.child("ipam").child("pools")
	var pools map[string]*oc.Switchd_Ipam_Pool
	if sd.Ipam != nil {
		pools = sd.Ipam.Pool
	}
	var prefixes []string
	for k := range pools {
		prefixes = append(prefixes, k)
	}
	sort.Strings(prefixes)
	for _, k := range prefixes {
		pl := pools[k]
		p := poolsPath.entry("pool", []kv{{"prefix", k}})
		pfx, ok := t.prefix(k, p.child("config").child("prefix"))
		if !ok {
			continue
		}
		if pfx != pfx.Masked() {
			t.add(p.child("config").child("prefix"), fmt.Sprintf("pool %v has host bits set (did you mean %v?)", pfx, pfx.Masked()))
			continue
		}
		pool := host.Pool{Prefix: pfx}
		if bl := pl.BlockLength; bl != nil {
			if int(*bl) < pfx.Bits() || int(*bl) > pfx.Addr().BitLen() {
				t.add(p.child("config").child("block-length"), fmt.Sprintf("block length /%d does not fit pool %v (want /%d to /%d)", *bl, pfx, pfx.Bits(), pfx.Addr().BitLen()))
				continue
			}
			pool.BlockBits = int(*bl)
		}
		for _, other := range w.Pools {
			if other.Prefix.Overlaps(pfx) {
				t.add(p, fmt.Sprintf("pool %v overlaps pool %v", pfx, other.Prefix))
			}
		}
		w.Pools = append(w.Pools, pool)
	}
	t.staticPrefixes(sd.Ipam, w)

	var names []string
	for k := range sd.Endpoint {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		ep := sd.Endpoint[name]
		p := switchdPath.child("endpoints").entry("endpoint", []kv{{"name", name}})
		cfg := p.child("config")
		switch ep.Kind {
		case oc.Switchd_EndpointKind_VM:
		case oc.Switchd_EndpointKind_CONTAINER:
			t.add(cfg.child("kind"), "container endpoints come from the CNI plugin; configure VMs here")
			continue
		default:
			t.add(cfg.child("kind"), "endpoint has no kind (VM)")
			continue
		}
		vm := host.VMRequest{Name: name, Tap: ep.GetInterface()}
		if vm.Tap == "" {
			t.add(cfg.child("interface"), "a VM endpoint needs the tap interface switchd adopts")
			continue
		}
		if s := ep.GetIpv4Address(); s != "" {
			vm.IPv4, _ = netip.ParseAddr(s) // the schema checked the pattern
		}
		if s := ep.GetIpv6Address(); s != "" {
			vm.IPv6, _ = netip.ParseAddr(s)
		}
		if !t.fixedAddrGiven(vm.IPv4, w, cfg.child("ipv4-address")) || !t.fixedAddrGiven(vm.IPv6, w, cfg.child("ipv6-address")) {
			continue
		}
		if !vm.IPv4.IsValid() && !vm.IPv6.IsValid() && len(w.Pools) == 0 {
			t.add(cfg, "endpoint has no address and no IPAM pool is configured")
			continue
		}
		if s := ep.GetMac(); s != "" {
			mac, err := net.ParseMAC(s)
			if err != nil {
				t.add(cfg.child("mac"), fmt.Sprintf("invalid MAC %q: %v", s, err))
				continue
			}
			vm.MAC = mac
		}
		for k, l := range ep.Label {
			if vm.Labels == nil {
				vm.Labels = map[string]string{}
			}
			vm.Labels[k] = l.GetValue()
		}
		w.VMs = append(w.VMs, vm)
	}
}

// staticPrefixes translates /switchd/ipam/config/static-prefix: masked
// prefixes in no pool (an address is in a pool, claimed with its block, or
// in a static prefix, announced alone; never both).
func (t *translator) staticPrefixes(ipam *oc.Switchd_Ipam, w *Workloads) {
	p := switchdPath.child("ipam").child("config").child("static-prefix")
	for _, s := range ipam.GetStaticPrefix() {
		pfx, ok := t.prefix(s, p)
		if !ok {
			continue
		}
		for _, pl := range w.Pools {
			if pl.Prefix.Overlaps(pfx) {
				t.add(p, fmt.Sprintf("static prefix %v overlaps pool %v", pfx, pl.Prefix))
				ok = false
			}
		}
		if ok && !slices.Contains(w.StaticPrefixes, pfx) {
			w.StaticPrefixes = append(w.StaticPrefixes, pfx)
		}
	}
}

// fixedAddrGiven reports whether a VM's fixed address a (if set) lies in a
// pool or a static prefix, the only addresses this host may announce (as
// host.IPAM.Assign enforces at run time).
func (t *translator) fixedAddrGiven(a netip.Addr, w *Workloads, p path) bool {
	if !a.IsValid() {
		return true
	}
	in := func(pfx netip.Prefix) bool { return pfx.Contains(a) }
	if slices.ContainsFunc(w.StaticPrefixes, in) || slices.ContainsFunc(w.Pools, func(pl host.Pool) bool { return in(pl.Prefix) }) {
		return true
	}
	t.add(p, fmt.Sprintf("address %v is in no IPAM pool and no static prefix (/switchd/ipam): this host may not announce it", a))
	return false
}

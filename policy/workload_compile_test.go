package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCIDRRangesSubtractExcepts(t *testing.T) {
	pfx := func(ss ...string) (out []netip.Prefix) {
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, c := range []struct {
		f              family
		cidrs, excepts []netip.Prefix
		want           string
	}{
		{fam4, pfx("10.0.0.0/8"), pfx("10.1.0.0/16", "10.2.0.0/16"), "[10.0.0.0-10.0.255.255 10.3.0.0-10.255.255.255]"},
		{fam4, pfx("10.0.0.0/24", "10.0.1.0/24", "2001:db8::/32"), nil, "[10.0.0.0-10.0.1.255]"},
		{fam6, pfx("10.0.0.0/24", "2001:db8::/32"), pfx("2001:db8::/33"), "[2001:db8:8000::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"},
		{fam4, pfx("10.0.0.0/24"), pfx("10.0.0.0/24"), "[]"},
		{fam4, pfx("0.0.0.0/0"), pfx("0.0.0.0/1"), "[128.0.0.0-255.255.255.255]"},
	} {
		var got []string
		for _, r := range cidrRanges(c.f, c.cidrs, c.excepts) {
			got = append(got, r.first.String()+"-"+r.last.String())
		}
		if s := fmt.Sprint(got); s != c.want && !(c.want == "[]" && got == nil) {
			t.Errorf("%v except %v (%v): %s, want %s", c.cidrs, c.excepts, c.f, s, c.want)
		}
	}
}

func TestPortElementsMerge(t *testing.T) {
	got := portElements([]PortRange{{100, 200}, {80, 80}, {150, 160}, {81, 90}, {65535, 65535}, {65000, 65534}})
	var s []string
	for _, e := range got {
		s = append(s, fmt.Sprintf("%x-%x", e.Key, e.KeyEnd))
	}
	if want := []string{"0050-005a", "0064-00c8", "fde8-ffff"}; !slices.Equal(s, want) {
		t.Errorf("merged %v, want %v", s, want)
	}
}

// TestWorkloadEndpointChangesAreElements checks the compiler without a
// kernel: once a profile has a chain, endpoint adds, label changes and
// deletes touch no chain, only selector-set and map elements; a new
// combination of policies makes one chain, its last endpoint removes it.
func TestWorkloadEndpointChangesAreElements(t *testing.T) {
	tb := NewTable(nil)
	w := newWorkload(tb)
	must(t, w.setIntent(dbPolicy()))
	must(t, w.upsert(fakeEndpoint(1, "db")))
	must(t, w.upsert(fakeEndpoint(2, "web")))
	if len(w.profiles) != 1 {
		t.Fatalf("profiles %v, want db's", w.profiles)
	}
	web4 := selectorSetName(fam4, `role == "web"`)
	clear(tb.dirtyChains)

	must(t, w.upsert(fakeEndpoint(3, "db")))  // joins db's profile
	must(t, w.upsert(fakeEndpoint(4, "web"))) // into web's sets
	must(t, w.upsert(fakeEndpoint(2, "none")))
	must(t, w.remove("fk4"))
	if len(tb.dirtyChains) != 0 {
		t.Errorf("endpoint changes touched chains %v", tb.dirtyChains)
	}
	if got := len(tb.sets[web4].want); got != 0 {
		t.Errorf("web's set holds %d, want 0", got)
	}
	prof := slices.Collect(maps.Keys(w.profiles))[0]
	if got, want := mapGotos(tb, wlToMap), map[string]string{"fk1": prof, "fk2": wlOpenChain, "fk3": prof}; !maps.Equal(got, want) {
		t.Errorf("wl-to %v, want %v", got, want)
	}

	// A second source fills the same set; an endpoint with the same
	// address does not double it, and leaving keeps the other's.
	addr := fakeEndpoint(5, "").Addrs[0]
	must(t, w.setMembers("bgp", `role == "web"`, []netip.Addr{addr}))
	must(t, w.upsert(fakeEndpoint(5, "web")))
	must(t, w.remove("fk5"))
	if _, ok := tb.sets[web4].want[string(addr.AsSlice())]; !ok || len(tb.sets[web4].want) != 1 {
		t.Errorf("web's set %v, want the BGP member %v alone", tb.sets[web4].want, addr)
	}

	// Two policies selecting one endpoint: a new chain, gone with it.
	in := dbPolicy()
	p2 := in.Policies[0]
	p2.Name, p2.Selector = "tier", MustParseSelector(`tier == "back"`)
	in.Policies = append(in.Policies, p2)
	must(t, w.setIntent(in))
	clear(tb.dirtyChains)
	ep := fakeEndpoint(6, "db")
	ep.Labels["tier"] = "back"
	must(t, w.upsert(ep))
	must(t, w.remove(ep.ID))
	if len(tb.dirtyChains) != 1 || len(w.profiles) != 1 {
		t.Errorf("a new combination: dirty chains %v, profiles %d; want one chain made and removed, db's left", tb.dirtyChains, len(w.profiles))
	}
}

// TestWorkloadDefaultDeny: with Default Deny, an endpoint no policy
// selects jumps to wl-deny both ways; one a policy selects for ingress
// only jumps to its profile for ingress and to wl-deny for egress.
func TestWorkloadDefaultDeny(t *testing.T) {
	tb := NewTable(nil)
	w := newWorkload(tb)
	in := dbPolicy()
	in.Default = Deny
	must(t, w.setIntent(in))
	must(t, w.upsert(fakeEndpoint(1, "web")))
	must(t, w.upsert(fakeEndpoint(2, "db")))
	if e := w.eps["fk1"]; e.in != wlDenyChain || e.out != wlDenyChain {
		t.Errorf("fk1 (unselected) jumps to %q/%q, want %s both ways", e.in, e.out, wlDenyChain)
	}
	if e := w.eps["fk2"]; e.in == wlDenyChain || e.in == "" || e.out != wlDenyChain {
		t.Errorf("fk2 (db) jumps to %q/%q, want its profile / %s", e.in, e.out, wlDenyChain)
	}
	if tb.chains[wlDenyChain] == nil || len(tb.sets[wlFromMap].want) != 2 {
		t.Errorf("wl-deny %v, wl-from %d elements; want the chain and 2", tb.chains[wlDenyChain], len(tb.sets[wlFromMap].want))
	}
	// Back to Default Allow: the chain goes, and so do the map entries.
	must(t, w.setIntent(dbPolicy()))
	if tb.chains[wlDenyChain] != nil {
		t.Error("after Default Allow: wl-deny is still there")
	}
	if got, want := mapGotos(tb, wlFromMap), map[string]string{"fk1": wlOpenChain, "fk2": wlOpenChain}; !maps.Equal(got, want) {
		t.Errorf("after Default Allow: wl-from %v, want %v", got, want)
	}
	if got := mapGotos(tb, wlToMap); len(got) != 2 || got["fk1"] != wlOpenChain || got["fk2"] == wlOpenChain {
		t.Errorf("after Default Allow: wl-to %v, want fk1 open, fk2 to its profile", got)
	}
}

// mapGotos is the desired state of verdict map m: interface → the chain
// its element goes to; "jump:" marks a jump, which workload maps never
// hold.
func mapGotos(tb *Table, m string) map[string]string {
	out := map[string]string{}
	for _, e := range tb.sets[m].want {
		c := e.Jump
		if !e.Goto {
			c = "jump:" + c
		}
		out[strings.TrimRight(string(e.Key), "\x00")] = c
	}
	return out
}

// TestWorkloadMembersIncremental: a source's members are a set, so
// AddMembers and RemoveMembers touch only the addresses they name (one
// already given, or never given, is no change), SetMembers sends only
// its difference, and two sources holding one address keep it until
// both let go.
func TestWorkloadMembersIncremental(t *testing.T) {
	tb := NewTable(nil)
	e := &Engine{tb: tb, wl: newWorkload(tb)}
	must(t, e.SetIntent(dbPolicy()))
	web := MustParseSelector(`role == "web"`)
	web4 := selectorSetName(fam4, web.String())
	a := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}) }
	elems := func() (out []netip.Addr) {
		for k := range tb.sets[web4].want {
			out = append(out, netip.AddrFrom4([4]byte([]byte(k))))
		}
		slices.SortFunc(out, netip.Addr.Compare)
		return out
	}
	step := func(what string, want []netip.Addr, dirty int) {
		t.Helper()
		if got := elems(); !slices.Equal(got, want) {
			t.Errorf("%s: set %v, want %v", what, got, want)
		}
		if got := len(tb.sets[web4].dirtyKeys); got != dirty {
			t.Errorf("%s: %d keys touched, want %d", what, got, dirty)
		}
		clear(tb.sets[web4].dirtyKeys)
	}
	must(t, e.SetMembers("k8s", web, []netip.Addr{a(1), a(2), a(3)}))
	step("SetMembers 1 2 3", []netip.Addr{a(1), a(2), a(3)}, 3)
	must(t, e.SetMembers("k8s", web, []netip.Addr{a(2), a(3), a(4)}))
	step("SetMembers 2 3 4", []netip.Addr{a(2), a(3), a(4)}, 2)
	must(t, e.AddMembers("k8s", web, a(4), netip.AddrFrom16(a(5).As16())))
	step("AddMembers 4 and 5 (IPv4-mapped)", []netip.Addr{a(2), a(3), a(4), a(5)}, 1)
	must(t, e.RemoveMembers("k8s", web, a(2), a(9)))
	step("RemoveMembers 2 9", []netip.Addr{a(3), a(4), a(5)}, 1)
	must(t, e.AddMembers("bgp", web, a(3)))
	must(t, e.RemoveMembers("k8s", web, a(3)))
	step("3 from bgp too, k8s's 3 removed", []netip.Addr{a(3), a(4), a(5)}, 0)
	must(t, e.SetMembers("k8s", web, nil))
	step("k8s withdrawn", []netip.Addr{a(3)}, 2)
	if _, ok := e.wl.extra[web.String()]["k8s"]; ok {
		t.Errorf("a withdrawn source is still kept: %v", e.wl.extra)
	}
	// Members survive a recompile that keeps the selector.
	in := dbPolicy()
	in.Policies[0].Ingress[0].DstPorts[0] = PortRange{5433, 5433}
	must(t, e.SetIntent(in))
	if got := elems(); !slices.Equal(got, []netip.Addr{a(3)}) {
		t.Errorf("after SetIntent: set %v, want bgp's 3", got)
	}
}

// TestWorkloadSetIntentDiffsMembers: a policy added (every endpoint
// leaves and joins the compilation again) touches no element of a
// selector set whose members stay, and adds the new selector's, and
// rewrites no profile chain that stays the same; one removed takes its
// sets and leaves the others' elements alone.
func TestWorkloadSetIntentDiffsMembers(t *testing.T) {
	tb := NewTable(nil)
	w := newWorkload(tb)
	base := dbPolicy()
	base.Policies = append(base.Policies, Policy{Name: "web-in", Selector: MustParseSelector(`role == "web"`), SelectsIngress: true})
	webProfile := "wli-" + shortHash("ingress", "web-in")
	must(t, w.setIntent(base))
	for i := range 20 {
		must(t, w.upsert(fakeEndpoint(i, map[bool]string{true: "db", false: "web"}[i%2 == 0])))
	}
	must(t, w.setMembers("bgp", `role == "web"`, []netip.Addr{netip.MustParseAddr("10.9.9.9")}))
	web4 := selectorSetName(fam4, `role == "web"`)
	if n := len(tb.sets[web4].want); n != 11 {
		t.Fatalf("web's set has %d elements, want 10 endpoints and the BGP member", n)
	}
	clear(tb.sets[web4].dirtyKeys)
	if tb.chains[webProfile] == nil {
		t.Fatalf("no chain %s for the web endpoints (chains %v)", webProfile, slices.Collect(maps.Keys(tb.chains)))
	}
	clear(tb.dirtyChains)

	in := base
	in.Policies = slices.Clone(base.Policies)
	p2 := in.Policies[0]
	p2.Name = "db-from-db"
	db := MustParseSelector(`role == "db"`)
	p2.Ingress = []Rule{{Seq: 1, Action: Allow, Peer: Peer{Selector: &db}}}
	in.Policies = append(in.Policies, p2)
	must(t, w.setIntent(in))
	db4 := selectorSetName(fam4, db.String())
	if n := len(tb.sets[web4].dirtyKeys); n != 0 || len(tb.sets[web4].want) != 11 {
		t.Errorf("policy added: web's set has %d elements, %d touched; want 11, none", len(tb.sets[web4].want), n)
	}
	if n := len(tb.sets[db4].want); n != 10 {
		t.Errorf("policy added: db's set has %d elements, want 10", n)
	}
	if tb.dirtyChains[webProfile] || tb.chains[webProfile] == nil {
		t.Errorf("policy added: web's unchanged profile chain rewritten (dirty %v)", tb.dirtyChains)
	}

	must(t, w.setIntent(base))
	if n := len(tb.sets[web4].dirtyKeys); n != 0 || len(tb.sets[web4].want) != 11 {
		t.Errorf("policy removed: web's set has %d elements, %d touched; want 11, none", len(tb.sets[web4].want), n)
	}
	if st := tb.sets[db4]; st.wanted || len(st.want) != 0 {
		t.Errorf("policy removed: db's set still wanted (%d elements)", len(st.want))
	}
}

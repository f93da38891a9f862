package policy

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// withNetSets is dbPolicy with network sets.
func withNetSets(ns ...NetworkSet) Intent {
	in := dbPolicy()
	in.NetworkSets = ns
	return in
}

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// TestNetworkSetChangesAreElements checks the compiler without a kernel:
// a peer selector's network-set sets hold the merged prefixes of the
// network sets it matches; changing, relabelling or removing a network set
// touches no chain; a network set whose labels match a policy's own
// selector is not selected by it (no profile, no map entry).
func TestNetworkSetChangesAreElements(t *testing.T) {
	tb := NewTable(nil)
	w := newWorkload(tb)
	web := map[string]string{"role": "web"}
	must(t, w.setIntent(withNetSets(NetworkSet{Name: "remote-web", Labels: web,
		Prefixes: pfxs("10.1.0.0/24", "10.1.0.7/32", "10.1.1.0/24", "2001:db8:1::/48")})))
	must(t, w.upsert(fakeEndpoint(1, "db")))
	n4, n6 := selectorNetSetName(fam4, `role == "web"`), selectorNetSetName(fam6, `role == "web"`)
	elems := func(set string) (out []string) {
		for _, e := range tb.sets[set].want {
			a, _ := netip.AddrFromSlice(e.Key)
			b, _ := netip.AddrFromSlice(e.KeyEnd)
			out = append(out, a.String()+"-"+b.String())
		}
		return out
	}
	// The /32 lies in the first /24, which touches the second: one range.
	if got := elems(n4); len(got) != 1 || got[0] != "10.1.0.0-10.1.1.255" {
		t.Errorf("IPv4 network-set set %v, want the two /24s merged", got)
	}
	if got := elems(n6); len(got) != 1 {
		t.Errorf("IPv6 network-set set %v, want one range", got)
	}
	if got := len(tb.sets[selectorSetName(fam4, `role == "web"`)].want); got != 0 {
		t.Errorf("web's endpoint set holds %d, want 0 (network sets go to the interval set)", got)
	}
	clear(tb.dirtyChains)

	must(t, w.setIntent(withNetSets(NetworkSet{Name: "remote-web", Labels: web, Prefixes: pfxs("10.2.0.5/32")},
		NetworkSet{Name: "dbs", Labels: map[string]string{"role": "db"}, Prefixes: pfxs("10.3.0.0/16")})))
	if len(tb.dirtyChains) != 0 {
		t.Errorf("a network set change touched chains %v", tb.dirtyChains)
	}
	if got := elems(n4); len(got) != 1 || got[0] != "10.2.0.5-10.2.0.5" {
		t.Errorf("IPv4 network-set set %v, want 10.2.0.5 alone", got)
	}
	if got := len(elems(n6)); got != 0 {
		t.Errorf("IPv6 network-set set holds %d, want 0", got)
	}
	if len(w.profiles) != 1 || len(tb.sets[wlToMap].want) != 1 {
		t.Errorf("profiles %v, wl-to %d: a network set labelled role db must not be selected by the db policy", w.profiles, len(tb.sets[wlToMap].want))
	}

	must(t, w.setIntent(dbPolicy()))
	if len(tb.dirtyChains) != 0 {
		t.Errorf("removing the network sets touched chains %v", tb.dirtyChains)
	}
	if got := len(elems(n4)); got != 0 {
		t.Errorf("IPv4 network-set set holds %d after the network sets went, want 0", got)
	}

	// A full recompile (another policy selector) keeps the elements.
	in := withNetSets(NetworkSet{Name: "remote-web", Labels: web, Prefixes: pfxs("10.2.0.5/32")})
	must(t, w.setIntent(in))
	in.Policies[0].Selector = MustParseSelector(`role in {"db", "pg"}`)
	must(t, w.setIntent(in))
	if got := elems(n4); len(got) != 1 {
		t.Errorf("after a recompile the IPv4 network-set set is %v, want 10.2.0.5", got)
	}
	must(t, w.setIntent(Intent{NetworkSets: in.NetworkSets}))
	if st := tb.sets[n4]; st != nil && st.wanted {
		t.Error("the network-set set outlives the last policy using its selector")
	}
}

// TestPrivilegedNetworkSetMembers: web is no endpoint of this host (as a
// workload on another host would be), so only a network set labelled role
// web lets it through the db policy: by host addresses, then by prefixes;
// relabelling the network set closes db again; other never gets in. Every
// network set change is set elements only: the same rule handles and
// counts.
func TestPrivilegedNetworkSetMembers(t *testing.T) {
	h := newWLHost(t, "web", "db", "other")
	h.listen("db", 5432)
	e := h.engine("db", "other")
	ctx := context.Background()
	must(t, e.SetIntent(dbPolicy()))
	must(t, e.Apply(ctx))
	h.expect("web not known", false, false, false)
	k := newKernel(t, h.host, DefaultName)
	before, counts := k.handles(), e.Status().Counts

	web := map[string]string{"role": "web"}
	hosts := NetworkSet{Name: "web-hosts", Labels: web}
	for _, a := range h.eps["web"].Addrs {
		hosts.Prefixes = append(hosts.Prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	nets := NetworkSet{Name: "web-nets", Labels: web, Prefixes: pfxs("10.64.0.0/24", "2001:db8::/48")}
	off := NetworkSet{Name: "web-nets", Labels: map[string]string{"role": "cache"}, Prefixes: nets.Prefixes}
	for _, step := range []struct {
		name  string
		sets  []NetworkSet
		webDB bool
		want4 string // in `nft list set` of the IPv4 network-set set
	}{
		{"web's host addresses", []NetworkSet{hosts}, true, "10.64.0.1"},
		{"web's prefixes", []NetworkSet{nets}, true, "10.64.0.0/24"},
		{"relabelled role cache", []NetworkSet{off}, false, ""},
		{"both", []NetworkSet{hosts, nets}, true, "10.64.0.0/24"},
		{"none", nil, false, ""},
	} {
		must(t, e.SetIntent(withNetSets(step.sets...)))
		must(t, e.Apply(ctx))
		if m := e.Table().Messages(); m > 4 {
			t.Errorf("%s: %d messages, want at most 4 (element changes of two sets)", step.name, m)
		}
		if hs := k.handles(); !equalHandles(before, hs) {
			t.Errorf("%s: rules changed: %v -> %v", step.name, before, hs)
		}
		if c := e.Status().Counts; c.Rules != counts.Rules || c.Chains != counts.Chains || c.Sets != counts.Sets {
			t.Errorf("%s: counts %+v -> %+v, want the same rules, chains and sets", step.name, counts, c)
		}
		list := k.nft("list", "set", "inet", DefaultName, selectorNetSetName(fam4, `role == "web"`))
		if step.want4 != "" && !strings.Contains(list, step.want4) || step.want4 == "" && strings.Contains(list, "elements") {
			t.Errorf("%s: IPv4 network-set set is\n%s\nwant %q", step.name, list, step.want4)
		}
		h.expect(step.name, step.webDB, false, false)
	}
}

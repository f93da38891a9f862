package policy

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables/expr"
)

// TestAntiSpoofElements: one interface element and one (interface .
// address) pair per distinct address, in the family's set, laid out as the
// kernel's concatenation (16-byte name, then the address).
func TestAntiSpoofElements(t *testing.T) {
	ep := Endpoint{ID: "c1", Interface: "cali1234", Addrs: []netip.Addr{
		netip.MustParseAddr("10.1.0.5"),
		netip.MustParseAddr("::ffff:10.1.0.5"), // the same address, mapped
		netip.MustParseAddr("fd00::5"),
		netip.MustParseAddr("fe80::5%cali1234"), // zones are not part of a key
	}}
	got := antiSpoofElements(ep)
	name := IfName("cali1234")
	want := map[string][][]byte{
		SetAntiSpoofIfaces: {name},
		SetAntiSpoofSrc4:   {append(slices.Clone(name), 10, 1, 0, 5)},
		SetAntiSpoofSrc6: {
			append(slices.Clone(name), netip.MustParseAddr("fd00::5").AsSlice()...),
			append(slices.Clone(name), netip.MustParseAddr("fe80::5").AsSlice()...),
		},
	}
	if len(got) != len(want) {
		t.Fatalf("elements for sets %v, want %d sets", got, len(want))
	}
	for set, keys := range want {
		if len(got[set]) != len(keys) {
			t.Errorf("%s: %d elements, want %d", set, len(got[set]), len(keys))
			continue
		}
		for i, k := range keys {
			if !slices.Equal(got[set][i].Key, k) {
				t.Errorf("%s[%d] = %x, want %x", set, i, got[set][i].Key, k)
			}
		}
	}
	if e := antiSpoofElements(Endpoint{ID: "no-iface", Addrs: ep.Addrs}); e != nil {
		t.Errorf("endpoint without an interface: %v, want nothing", e)
	}

	// The sets take these keys (their size fits the set's type).
	tb := NewTable(nil)
	c, sets := antiSpoofSlot()
	for _, s := range sets {
		must(t, tb.SetSet(s))
	}
	must(t, tb.SetChain(c))
	for set, es := range got {
		must(t, tb.AddElements(set, es...))
	}
}

// TestAntiSpoofSlot: the chain looks up only its own sets, drops (with a
// counter) in the two spoof rules only, counts the exceptions, and lets the link-local and DAD
// exceptions out before the IPv6 drop.
func TestAntiSpoofSlot(t *testing.T) {
	c, sets := antiSpoofSlot()
	if c.Name != SlotAntiSpoof || c.Hook != nil {
		t.Fatalf("chain %q (hook %v), want regular chain %q", c.Name, c.Hook, SlotAntiSpoof)
	}
	names := map[string]bool{}
	for _, s := range sets {
		names[s.Name] = true
	}
	var ids []string
	for _, r := range c.Rules {
		ids = append(ids, r.ID)
		var counter bool
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Lookup:
				if !names[e.SetName] {
					t.Errorf("rule %s looks up %q, not one of the slot's sets", r.ID, e.SetName)
				}
			case *expr.Counter:
				counter = true
			}
		}
		v := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
		drop := v.Kind == expr.VerdictDrop
		if drop != (r.ID == RuleSpoof4 || r.ID == RuleSpoof6) || counter != (r.ID != "not-workload") {
			t.Errorf("rule %s: verdict %v, counter %v", r.ID, v.Kind, counter)
		}
	}
	want := []string{"not-workload", RuleSpoof4, RuleLinkLocal6, RuleUnspecified6, RuleSpoof6}
	if !slices.Equal(ids, want) {
		t.Errorf("rules %v, want %v", ids, want)
	}
}

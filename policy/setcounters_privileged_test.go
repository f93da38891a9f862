package policy

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"

	"github.com/switchd/switchd/sim/ns"
)

// TestPrivilegedElementIDs: elements of a set with counters carry their ID
// as the kernel's comment, an interval one (rbtree) and a concatenated one
// alike; Counters reports each element under its ID; an element whose ID
// changes is deleted and added again (its counter starts anew), one whose
// ID stays is not written; an element whose comment someone else changed
// is repaired by a resync; a new Table adopting the set writes nothing.
func TestPrivilegedElementIDs(t *testing.T) {
	n := ns.NewT(t, "pol-elemid")
	k := newKernel(t, n, DefaultName)
	tb := NewTable(n.Net())
	t.Cleanup(func() { tb.Close() })
	ctx := context.Background()
	p := func(s string, id string) Element {
		e := Prefix(netip.MustParsePrefix(s))
		e.ID = id
		return e
	}
	concat := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	pair := func(a, b byte, port uint16, id string) Element {
		return Element{Key: Concat([]byte{10, 0, 0, a}, aclBE16(port)), KeyEnd: Concat([]byte{10, 0, 0, b}, aclBE16(port)), ID: id}
	}
	must(t, tb.SetSet(Set{Name: "one", KeyType: nftables.TypeIPAddr, Interval: true, Counter: true}))
	must(t, tb.SetSet(Set{Name: "two", KeyType: concat, Interval: true, Counter: true}))
	must(t, tb.AddElements("one", p("10.1.0.0/16", "a"), p("10.2.0.0/16", "b")))
	must(t, tb.AddElements("two", pair(1, 7, 80, "c"), pair(8, 8, 443, "d")))
	must(t, tb.Apply(ctx))

	ids := func() []string {
		t.Helper()
		rcs, err := tb.Counters()
		must(t, err)
		var out []string
		for _, rc := range rcs {
			out = append(out, rc.Chain+":"+rc.ID)
		}
		slices.Sort(out)
		return out
	}
	comments := func(set string) []string {
		var out []string
		for _, e := range k.elements(set) {
			if !e.IntervalEnd {
				out = append(out, e.Comment)
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := ids(), []string{"one:a", "one:b", "two:c", "two:d"}; !slices.Equal(got, want) {
		t.Errorf("counters %v, want %v", got, want)
	}
	if got := comments("two"); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("kernel comments of two: %v, want c, d", got)
	}

	// b becomes e: one delete and one add; a is not written.
	must(t, tb.DeleteElements("one", p("10.2.0.0/16", "b")))
	must(t, tb.AddElements("one", p("10.2.0.0/16", "e"), p("10.1.0.0/16", "a")))
	must(t, tb.Apply(ctx))
	if got := tb.Messages(); got != 2 {
		t.Errorf("renaming one element took %d messages, want 2", got)
	}
	if got := comments("one"); !slices.Equal(got, []string{"a", "e"}) {
		t.Errorf("kernel comments of one: %v, want a, e", got)
	}

	// Someone rewrites d's comment: the resync puts it back.
	k.nft("delete", "element", "inet", DefaultName, "two", "{ 10.0.0.8 . 443 }")
	k.nft("add", "element", "inet", DefaultName, "two", `{ 10.0.0.8 . 443 comment "x" }`)
	tb.QueueResync()
	must(t, tb.Apply(ctx))
	if got := comments("two"); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("kernel comments of two after the repair: %v, want c, d", got)
	}

	b := NewTable(n.Net())
	t.Cleanup(func() { b.Close() })
	must(t, b.SetSet(Set{Name: "one", KeyType: nftables.TypeIPAddr, Interval: true, Counter: true}))
	must(t, b.SetSet(Set{Name: "two", KeyType: concat, Interval: true, Counter: true}))
	must(t, b.AddElements("one", p("10.1.0.0/16", "a"), p("10.2.0.0/16", "e")))
	must(t, b.AddElements("two", pair(1, 7, 80, "c"), pair(8, 8, 443, "d")))
	must(t, b.Apply(ctx))
	if got := b.Messages(); got != 0 {
		t.Errorf("adopting the sets wrote %d messages, want none", got)
	}
}

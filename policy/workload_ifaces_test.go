package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestIfaceElements: prefixes cover every name they start, whole names
// themselves; overlapping and touching ranges merge; a lone "*" and names
// no interface can have are left out.
func TestIfaceElements(t *testing.T) {
	show := func(es []Element) []string {
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf("%q-%q", e.Key, e.KeyEnd))
		}
		return out
	}
	ff := func(s string) string { // s padded with 0xff to 16 bytes
		return s + string(slices.Repeat([]byte{0xff}, 16-len(s)))
	}
	got := show(ifaceElements([]string{"tap0", "swc*", "*", "swc1", "sw*", "swd", "a-name-far-too-long", "", "vm1"}))
	want := show([]Element{
		{Key: IfName("sw"), KeyEnd: []byte(ff("sw"))}, // swc*, swc1, swd inside
		{Key: IfName("tap0"), KeyEnd: IfName("tap0")},
		{Key: IfName("vm1"), KeyEnd: IfName("vm1")},
	})
	if !slices.Equal(got, want) {
		t.Errorf("elements\n  %v\nwant\n  %v", got, want)
	}
	// "swd" touches "swc*"'s range: one element.
	got = show(ifaceElements([]string{"swd", "swc*"}))
	want = show([]Element{{Key: IfName("swc"), KeyEnd: IfName("swd")}})
	if !slices.Equal(got, want) {
		t.Errorf("touching: %v, want %v", got, want)
	}
}

// TestPrivilegedUnknownWorkloadInterfaceDropped: a workload interface
// policy has no endpoint for is closed while policy is in force, not
// open. db's veth (wl-db) is up and routed, web and other are endpoints,
// db is not yet: web reaches neither db:5432 nor db by ping, and db
// reaches nobody, though the db policy would let web in; web and other,
// known and selected by no policy, still reach each other. Once db is
// upserted, the db policy decides (web in, other not). With no policy at
// all nothing is dropped, db unknown or not. A restarted engine given the
// same inputs adopts the table and writes nothing.
func TestPrivilegedUnknownWorkloadInterfaceDropped(t *testing.T) {
	h := newWLHost(t, "web", "db", "other")
	h.listen("db", 5432)
	e := h.engine("web", "other")
	ctx := context.Background()
	ifaces := []string{"wl-*"}
	db4, db6 := h.eps["db"].Addrs[0], h.eps["db"].Addrs[1]

	must(t, e.SetIntent(Intent{Interfaces: ifaces}))
	must(t, e.Apply(ctx))
	if !h.connects("web", db4, 5432, time.Second, true) {
		t.Error("no policy: web does not reach db:5432 (unknown to policy, but nothing is in force)")
	}

	in := dbPolicy()
	in.Interfaces = ifaces
	must(t, e.SetIntent(in))
	must(t, e.Apply(ctx))
	for _, a := range h.eps["db"].Addrs {
		if h.connects("web", a, 5432, 500*time.Millisecond, false) {
			t.Errorf("db unknown: web reaches db %v:5432", a)
		}
		if h.ping("web", a) {
			t.Errorf("db unknown: web pings db %v", a)
		}
	}
	for _, a := range h.eps["web"].Addrs {
		if h.ping("db", a) {
			t.Errorf("db unknown: db pings web %v", a)
		}
	}
	if !h.ping("web", h.eps["other"].Addrs[0]) || !h.ping("other", h.eps["web"].Addrs[1]) {
		t.Error("db unknown: web and other (known, no policy selects them) do not reach each other")
	}
	drops := map[string]uint64{}
	cs, err := e.Table().Counters()
	must(t, err)
	for _, c := range cs {
		drops[c.ID] += c.Packets
	}
	if drops["to unknown workload interface"] == 0 || drops["from unknown workload interface"] == 0 {
		t.Errorf("unknown-interface drops counted %v, want some each way", drops)
	}

	// Policy learns db: its policy decides.
	must(t, e.UpsertEndpoint(h.eps["db"]))
	must(t, e.Apply(ctx))
	h.expect("db known", true, false, false)

	// A restart: a new engine with the same inputs adopts the table.
	e2 := h.engine("web", "other", "db")
	must(t, e2.SetIntent(in))
	must(t, e2.Apply(ctx))
	if m := e2.Table().Messages(); m != 0 {
		t.Errorf("a restarted engine with the same inputs sent %d messages, want 0", m)
	}
	h.expect("after restart", true, false, false)
	if !h.connects("web", db6, 5432, time.Second, true) || h.connects("other", db4, 5432, 500*time.Millisecond, false) {
		t.Error("after restart: db's policy does not decide")
	}
}

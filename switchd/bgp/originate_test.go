package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchd/switchd/sim/ns"
)

func TestSetOriginatedRefusesBadPrefixes(t *testing.T) {
	s := New()
	if err := s.SetOriginated(t.Context(), "workloads", []netip.Prefix{pfx("10.70.0.0/26")}); err != nil {
		t.Fatalf("SetOriginated before the first Apply: %v, want it recorded", err)
	}
	err := s.SetOriginated(t.Context(), "workloads", []netip.Prefix{pfx("10.71.0.0/26"), pfx("10.72.0.1/24"), {}})
	for _, want := range []string{"of workloads", "10.72.0.1/24: host bits set", "invalid prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SetOriginated with bad prefixes: err = %v, want one containing %q", err, want)
		}
	}
	if got := s.orig.owners["workloads"]; len(got) != 1 || !s.orig.wanted(pfx("10.70.0.0/26")) {
		t.Errorf("refused SetOriginated changed the owner's prefixes: %v, want only 10.70.0.0/26", got)
	}
	s.Stop()
	if err := s.SetOriginated(t.Context(), "workloads", nil); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("SetOriginated after Stop: err = %v, want 'speaker stopped'", err)
	}
}

// The delta API and Apply share the announced set: Apply owns the config's
// prefixes, SetOriginated each owner's, and a prefix stays announced while
// either wants it. No call resets a session.
func TestPrivilegedSetOriginated(t *testing.T) {
	ns.Privileged(t)
	mp := Multipath{Enabled: true}
	aCfg := Config{
		ASN: 65001, RouterID: ip("10.0.0.1"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.1")},
		Neighbors:       []Neighbor{peer("127.0.0.2", "127.0.0.1", 65002)},
		Originate:       []netip.Prefix{pfx("10.1.0.0/24"), pfx("10.1.1.0/24")},
	}
	bCfg := Config{
		ASN: 65002, RouterID: ip("10.0.0.2"), Multipath: mp,
		ListenAddresses: []netip.Addr{ip("127.0.0.2")},
		Neighbors:       []Neighbor{peer("127.0.0.1", "127.0.0.2", 65001)},
	}
	sp := speakers(t, aCfg, bCfg)
	a, b := sp[0], sp[1]
	rb := newRIB(b)
	via := ip("127.0.0.1")
	rb.waitRoute(t, pfx("10.1.0.0/24"), via)
	waitEstablished(t, a, "127.0.0.2")
	since := neighborState(t, a, ip("127.0.0.2")).EstablishedSince
	opens, ntfs := received(t, b, "127.0.0.1")

	// A workload block, and one prefix the config originates too.
	shared, block := pfx("10.1.1.0/24"), pfx("10.70.0.0/26")
	if err := a.SetOriginated(t.Context(), "workloads", []netip.Prefix{shared, block}); err != nil {
		t.Fatal(err)
	}
	rb.waitRoute(t, block, via)

	// A reload whose config lacks them (and drops shared) leaves both
	// announced. The marker it adds arrives after any withdrawal it sent.
	marker := pfx("10.1.2.0/24")
	aCfg.Originate = []netip.Prefix{pfx("10.1.0.0/24"), marker}
	if err := a.Apply(t.Context(), aCfg); err != nil {
		t.Fatal(err)
	}
	rb.waitRoute(t, marker, via)
	for _, p := range []netip.Prefix{shared, block} {
		if got := rb.routes[p]; !slices.Equal(got, []netip.Addr{via}) {
			t.Errorf("after an Apply without %v, B has it via %v, want via %v", p, got, via)
		}
	}

	// Now only the owner wants shared: it goes when the owner lets go.
	if err := a.SetOriginated(t.Context(), "workloads", []netip.Prefix{block}); err != nil {
		t.Fatal(err)
	}
	rb.waitRoute(t, shared)
	if err := a.SetOriginated(t.Context(), "workloads", nil); err != nil {
		t.Fatal(err)
	}
	rb.waitRoute(t, block)
	for _, p := range []netip.Prefix{pfx("10.1.0.0/24"), marker} {
		if got := rb.routes[p]; !slices.Equal(got, []netip.Addr{via}) {
			t.Errorf("after the owner withdrew, B has config prefix %v via %v, want via %v", p, got, via)
		}
	}

	if o, n := received(t, b, "127.0.0.1"); o != opens || n != ntfs {
		t.Errorf("session to B reset: OPENs %d→%d, NOTIFICATIONs %d→%d", opens, o, ntfs, n)
	}
	if got := neighborState(t, a, ip("127.0.0.2")).EstablishedSince; !got.Equal(since) {
		t.Errorf("neighbor 127.0.0.2 established-since changed %v→%v", since, got)
	}
}

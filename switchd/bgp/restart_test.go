// The restart tests run under -race again since GoBGP v4: v3.37's StopBgp
// reset its global config while the receive loops of the peers it tore
// down still read it on every message (fsm.go recvMessageWithError; the
// detector reported it in 1 of 3 runs), v4.8 reads it only when handling
// an OPEN.

package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
)

func TestPrivilegedGlobalChangeRestarts(t *testing.T) {
	ns.Privileged(t)
	// The peer is BIRD, not a second embedded speaker: a StartBgp writes
	// GoBGP package variables that other in-process speakers read
	// unsynchronised.
	b := startBIRD(t, []netip.Prefix{pfx("10.50.0.0/24")}, nil)
	cfg := birdConfig(pfx("10.60.0.0/24"))
	s := speaker(t, cfg)
	r := newRIB(s)
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	b.waitRoute(t, pfx("10.60.0.0/24"), ip("10.99.0.1"))

	cfg.RouterID = ip("10.99.0.11")
	cfg.Originate = []netip.Prefix{pfx("10.61.0.0/24")}
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// The restart forgets the RIB: Drain reports the route gone, then back
	// once the new session is up; BIRD sees the new router-id.
	r.waitRoute(t, pfx("10.50.0.0/24"))
	r.waitRoute(t, pfx("10.50.0.0/24"), ip("10.99.0.2"))
	b.waitRoute(t, pfx("10.61.0.0/24"), ip("10.99.0.1"))
	if out := b.birdc(t, "show", "protocols", "all", "up4"); !strings.Contains(out, "10.99.0.11") {
		t.Errorf("BIRD does not see the new router-id 10.99.0.11:\n%s", out)
	}
}

// A global change restarts the GoBGP server, which forgets its RIB: the
// config's prefixes and SetOriginated's both come back.
func TestPrivilegedGlobalChangeKeepsOriginated(t *testing.T) {
	ns.Privileged(t)
	// BIRD's covering static route keeps birdc's "show route for" from
	// failing (network not found) before our prefixes arrive.
	b := startBIRD(t, []netip.Prefix{pfx("10.0.0.0/8")}, nil)
	cfg := birdConfig(pfx("10.60.0.0/24"))
	s := speaker(t, cfg)
	block := pfx("10.62.0.0/26")
	if err := s.SetOriginated(t.Context(), "workloads", []netip.Prefix{block}); err != nil {
		t.Fatal(err)
	}
	b.waitRoute(t, block, ip("10.99.0.1"))

	cfg.RouterID = ip("10.99.0.11")
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// BIRD drops what the old session announced (no graceful restart):
	// once it sees the new router-id, what it has came over the new one.
	deadline := time.Now().Add(patience)
	for out := ""; !strings.Contains(out, "10.99.0.11"); out = b.birdc(t, "show", "protocols", "all", "up4") {
		if time.Now().After(deadline) {
			t.Fatalf("BIRD never saw the new router-id 10.99.0.11:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.waitRoute(t, pfx("10.60.0.0/24"), ip("10.99.0.1"))
	b.waitRoute(t, block, ip("10.99.0.1"))
}

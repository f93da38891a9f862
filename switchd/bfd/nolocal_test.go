package bfd

import (
	"net/netip"
	"testing"
	"time"
)

// TestNoLocalAddressPrivileged: single-hop sessions without a Local
// address (the kernel picks the source, as switchd's config asks for a
// neighbor without transport address), IPv4 bound to the link and IPv6
// not, come Up. The IPv4 one used to panic in AddPeer (the bind had no
// wildcard address).
func TestNoLocalAddressPrivileged(t *testing.T) {
	tp := newTopo(t)
	cfgs := peersOfA(100*time.Millisecond, 3)[:2]
	var ours, theirs []PeerConfig
	for i, c := range cfgs {
		theirs = append(theirs, mirror(c))
		c.Local = netip.Addr{}
		if i == 1 {
			c.Interface = ""
		}
		ours = append(ours, c)
	}
	ea := newEngine(t, tp.a, ours...)
	newEngine(t, tp.b, theirs...)
	(&watcher{e: ea}).waitFor(t, "sessions without a local address Up", lastIs(keys(ours), Up, -1))
}

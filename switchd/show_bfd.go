package main

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/switchd/switchd/models/oc"
)

// renderBFD is FRR's show bfd peers brief, from the state tree: one row
// per session, by peer address, with its link ("any": multihop or not
// bound), state, the peer's state, the last diagnostic, discriminators,
// how often it came up and failed, and the packets each way.
func renderBFD(d *oc.Device) *table {
	t := newTable("Peer", "Local", "Interface", "State", "Remote", "Diagnostic", "LocalDisc", "RemoteDisc", "Ups", "Failures", "Rx", "Tx")
	type row struct {
		iface string
		p     *oc.Bfd_Interface_Peer
	}
	var rows []row
	var ifs map[string]*oc.Bfd_Interface
	if b := d.GetBfd(); b != nil {
		ifs = b.Interface
	}
	for id, ifc := range ifs {
		for _, p := range ifc.Peer {
			rows = append(rows, row{id, p})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		x, errx := netip.ParseAddr(a.p.GetRemoteAddress())
		y, erry := netip.ParseAddr(b.p.GetRemoteAddress())
		if errx == nil && erry == nil && x != y {
			return x.Compare(y)
		}
		return cmp.Or(strings.Compare(a.iface, b.iface), strings.Compare(a.p.GetLocalDiscriminator(), b.p.GetLocalDiscriminator()))
	})
	for _, r := range rows {
		p := r.p
		diag := any(nil)
		if c := p.GetLocalDiagnosticCode(); c != oc.Bfd_BfdDiagnosticCode_UNSET && c != oc.Bfd_BfdDiagnosticCode_NO_DIAGNOSTIC {
			diag = bfdText(c.String())
		}
		t.add(p.RemoteAddress, p.LocalAddress, r.iface, bfdText(p.GetSessionState().String()), bfdText(p.GetRemoteSessionState().String()),
			diag, p.LocalDiscriminator, p.RemoteDiscriminator, p.UpTransitions, p.FailureTransitions,
			p.GetAsync().ReceivedPackets, p.GetAsync().TransmittedPackets)
	}
	return t
}

// bfdText is an OpenConfig enum name as FRR prints states ("up",
// "admin_down", "detection_timeout").
func bfdText(s string) string { return strings.ToLower(s) }

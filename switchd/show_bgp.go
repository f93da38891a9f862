package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchd/switchd/models/oc"
)

func showBGPSummary(ctx context.Context, c *daemonClient, o showOutput) error {
	d, err := c.device(ctx, bgpStatePath)
	if err != nil {
		return err
	}
	bgp := bgpOf(d)
	t := renderBGPSummary(bgp, o.now)
	if o.json {
		return t.writeJSON(o.w)
	}
	if bgp == nil {
		_, err := fmt.Fprintln(o.w, "No BGP state: BGP is not configured, or the daemon has not published it yet")
		return err
	}
	g := bgp.GetGlobal()
	fmt.Fprintf(o.w, "BGP router identifier %s, local AS number %s\n\n", orDash(g.RouterId), orDash(g.As))
	if err := t.write(o.w); err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.w, "\nTotal number of neighbors %d\n", len(t.rows))
	return err
}

func orDash(v any) string { return cellText(deref(v)) }

func bgpOf(d *oc.Device) *oc.NetworkInstance_Protocol_Bgp {
	return d.GetNetworkInstance("DEFAULT").GetProtocol(oc.PolicyTypes_INSTALL_PROTOCOL_TYPE_BGP, "BGP").GetBgp()
}

// neighborsOf are the neighbors in address order (IPv4 before IPv6).
func neighborsOf(b *oc.NetworkInstance_Protocol_Bgp) []*oc.NetworkInstance_Protocol_Bgp_Neighbor {
	if b == nil {
		return nil
	}
	ns := slices.Collect(maps.Values(b.Neighbor))
	slices.SortFunc(ns, func(a, b *oc.NetworkInstance_Protocol_Bgp_Neighbor) int {
		x, errx := netip.ParseAddr(a.GetNeighborAddress())
		y, erry := netip.ParseAddr(b.GetNeighborAddress())
		if errx != nil || erry != nil {
			return strings.Compare(a.GetNeighborAddress(), b.GetNeighborAddress())
		}
		return x.Compare(y)
	})
	return ns
}

// sessionText is a session state as FRR prints it (Established, Idle,
// Active, OpenSent...).
func sessionText(s oc.E_Neighbor_SessionState) string {
	switch s {
	case oc.Neighbor_SessionState_IDLE:
		return "Idle"
	case oc.Neighbor_SessionState_CONNECT:
		return "Connect"
	case oc.Neighbor_SessionState_ACTIVE:
		return "Active"
	case oc.Neighbor_SessionState_OPENSENT:
		return "OpenSent"
	case oc.Neighbor_SessionState_OPENCONFIRM:
		return "OpenConfirm"
	case oc.Neighbor_SessionState_ESTABLISHED:
		return "Established"
	}
	return "Unknown"
}

// prefixCounts sums a neighbor's prefix counts over its address
// families; sent is nil when no family reports it.
func prefixCounts(n *oc.NetworkInstance_Protocol_Bgp_Neighbor) (received, prePolicy uint64, sent *uint64) {
	for _, af := range n.AfiSafi {
		p := af.GetPrefixes()
		received += uint64(p.GetReceived())
		prePolicy += uint64(p.GetReceivedPrePolicy())
		if p.Sent != nil {
			if sent == nil {
				sent = new(uint64)
			}
			*sent += uint64(*p.Sent)
		}
	}
	return received, prePolicy, sent
}

// upDown is how long an established session has been up, "never" for a
// neighbor that was never established; nil for one that is down now
// (the state tree does not say since when).
func upDown(n *oc.NetworkInstance_Protocol_Bgp_Neighbor, now time.Time) any {
	if n.LastEstablished == nil {
		return "never"
	}
	if n.GetSessionState() != oc.Neighbor_SessionState_ESTABLISHED {
		return nil
	}
	return fmtUptime(now.Sub(time.Unix(0, int64(n.GetLastEstablished()))))
}

// renderBGPSummary is FRR's show bgp summary: per neighbor its AS,
// messages (UPDATEs and NOTIFICATIONs, what the state tree counts), how
// long it is up, and the accepted prefix count if Established, else
// the session state.
func renderBGPSummary(b *oc.NetworkInstance_Protocol_Bgp, now time.Time) *table {
	t := newTable("Neighbor", "AS", "MsgRcvd", "MsgSent", "Up/Down", "State/PfxRcd", "PfxSnt")
	for _, n := range neighborsOf(b) {
		m := n.GetMessages()
		rcvd := m.GetReceived().GetUPDATE() + m.GetReceived().GetNOTIFICATION()
		sent := m.GetSent().GetUPDATE() + m.GetSent().GetNOTIFICATION()
		var state any = sessionText(n.GetSessionState())
		received, _, pfxSent := prefixCounts(n)
		if n.GetSessionState() == oc.Neighbor_SessionState_ESTABLISHED {
			state = received
		}
		t.add(n.GetNeighborAddress(), n.PeerAs, rcvd, sent, upDown(n, now), state, pfxSent)
	}
	return t
}

// bgpFamilies are the columns of show bgp neighbors per address family.
var bgpFamilies = []struct {
	name string
	typ  oc.E_BgpTypes_AFI_SAFI_TYPE
}{{"IPv4", oc.BgpTypes_AFI_SAFI_TYPE_IPV4_UNICAST}, {"IPv6", oc.BgpTypes_AFI_SAFI_TYPE_IPV6_UNICAST}}

// renderBGPNeighbors is one row per neighbor (the one at addr if not
// empty) with everything the state tree has on it.
func renderBGPNeighbors(b *oc.NetworkInstance_Protocol_Bgp, addr string, now time.Time) *table {
	cols := []string{"Neighbor", "AS", "State", "Up/Down", "Established transitions", "Last established",
		"Updates rcvd", "Updates sent", "Notifications rcvd", "Notifications sent"}
	for _, f := range bgpFamilies {
		cols = append(cols, f.name+" active", f.name+" pfx rcvd", f.name+" pfx accepted", f.name+" pfx installed", f.name+" pfx sent")
	}
	t := newTable(cols...)
	for _, n := range neighborsOf(b) {
		if addr != "" && !sameAddr(n.GetNeighborAddress(), addr) {
			continue
		}
		m := n.GetMessages()
		row := []any{n.GetNeighborAddress(), n.PeerAs, sessionText(n.GetSessionState()), upDown(n, now),
			n.EstablishedTransitions, fmtTime(n.LastEstablished),
			m.GetReceived().UPDATE, m.GetSent().UPDATE, m.GetReceived().NOTIFICATION, m.GetSent().NOTIFICATION}
		for _, f := range bgpFamilies {
			af := n.GetAfiSafi(f.typ)
			if af == nil { // not configured for the family
				row = append(row, nil, nil, nil, nil, nil)
				continue
			}
			p := af.GetPrefixes()
			var sent any
			if p != nil {
				sent = deref(p.Sent)
			}
			row = append(row, af.GetActive(), p.GetReceivedPrePolicy(), p.GetReceived(), p.GetInstalled(), sent)
		}
		t.add(row...)
	}
	return t
}

// sameAddr compares addresses as addresses (2001:db8::1 is 2001:DB8:0::1).
func sameAddr(a, b string) bool {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	if errx != nil || erry != nil {
		return a == b
	}
	return x == y
}

func showBGPNeighbors(addr string) showFunc {
	return func(ctx context.Context, c *daemonClient, o showOutput) error {
		d, err := c.device(ctx, bgpStatePath)
		if err != nil {
			return err
		}
		t := renderBGPNeighbors(bgpOf(d), addr, o.now)
		if addr != "" && len(t.rows) == 0 {
			return fmt.Errorf("no BGP neighbor %s", addr)
		}
		if o.json {
			return t.writeJSON(o.w)
		}
		return t.writeRecords(o.w)
	}
}

// writeRecords prints each row as a block of "column: value" lines, its
// first value as the block's title: for records too wide for a line.
// Missing values are left out (the JSON has them as null).
func (t *table) writeRecords(w io.Writer) error {
	width := 0
	for _, c := range t.cols[1:] {
		width = max(width, len(c))
	}
	var b strings.Builder
	for r, row := range t.rows {
		if r > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s %s\n", t.cols[0], cellText(row[0]))
		for i, v := range row[1:] {
			if v == nil {
				continue
			}
			fmt.Fprintf(&b, "  %-*s  %s\n", width+1, t.cols[i+1]+":", cellText(v))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

package sim

import (
	"fmt"
	"time"
)

// BFD turns BFD (RFC 5880, single hop) on for the BGP sessions between
// switchd nodes: each neighbor's enable-bfd (on an unnumbered link, its
// peer group's) with these timers, the same both ways. BIRD or FRR peers
// are left without.
type BFD struct {
	// IntervalMs is the desired transmit and required receive interval.
	IntervalMs int `json:"interval-ms"`
	// Multiplier is the detection multiplier; 0 means 3.
	Multiplier int `json:"multiplier,omitempty"`
}

// bfdOption is Options.BFD as the topology's BFD (nil: off).
func bfdOption(d time.Duration) (*BFD, error) {
	if d == 0 {
		return nil, nil
	}
	if d < 10*time.Millisecond || d%time.Millisecond != 0 {
		return nil, fmt.Errorf("bfd interval %v: want whole milliseconds, at least 10ms", d)
	}
	return &BFD{IntervalMs: int(d / time.Millisecond)}, nil
}

// enableBFD is a neighbor's enable-bfd from the topology's BFD between
// nodes n and peer, or nil.
func (f *Fabric) enableBFD(n, peer *NodeInfo, i *Interface) obj {
	b := f.Topology.BFD
	if b == nil || n.Kind != Switchd || peer.Kind != Switchd {
		return nil
	}
	us := b.IntervalMs * 1000
	mult := b.Multiplier
	if mult == 0 {
		mult = 3
	}
	return obj{"config": obj{"enabled": true, "desired-minimum-tx-interval": us,
		"required-minimum-receive": us, "detection-multiplier": mult}}
}

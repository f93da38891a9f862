package state

import (
	"net/netip"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/switchd/switchd/models/oc"
)

// switchd's own status in the project module: /switchd/state/fib and
// /switchd/state/policy (what the daemon's status board knows after each
// Apply), /switchd/ipam/blocks (the blocks this host holds and their
// use). Cached like the rest of the tree: republishing an unchanged
// status sends nothing.

// FIBStatus is the FIB's state after an Apply.
type FIBStatus struct {
	InSync        bool
	Routes        int
	NexthopGroups int
	Stale         int
	LastResync    time.Time
	LastError     string
	// Routes by the hardware flags a switchdev driver set.
	Offloaded, Trapped, OffloadFailed int
}

// PolicyStatus is the policy engine's state after an Apply.
type PolicyStatus struct {
	InSync                                   bool
	Chains, Rules, Sets, Elements, Endpoints int
	LastApply                                time.Time
	LastError                                string
}

// IPAMBlock is one block this host holds.
type IPAMBlock struct {
	Prefix, Pool netip.Prefix
	Allocated    uint64
}

// FIB publishes /switchd/state/fib.
func (t *Tree) FIB(s FIBStatus) error {
	f := &oc.Switchd_Fib{
		InSync:        ygot.Bool(s.InSync),
		Routes:        ygot.Uint64(uint64(s.Routes)),
		NexthopGroups: ygot.Uint64(uint64(s.NexthopGroups)),
		Stale:         ygot.Uint64(uint64(s.Stale)),
		LastError:     ygot.String(s.LastError),
		Offloaded:     ygot.Uint64(uint64(s.Offloaded)),
		Trapped:       ygot.Uint64(uint64(s.Trapped)),
		OffloadFailed: ygot.Uint64(uint64(s.OffloadFailed)),
	}
	if !s.LastResync.IsZero() {
		f.LastResync = ygot.String(s.LastResync.UTC().Format(time.RFC3339Nano))
	}
	return t.publish(statusElems("fib"), f)
}

// Policy publishes /switchd/state/policy.
func (t *Tree) Policy(s PolicyStatus) error {
	p := &oc.Switchd_Policy{
		InSync:    ygot.Bool(s.InSync),
		Chains:    ygot.Uint64(uint64(s.Chains)),
		Rules:     ygot.Uint64(uint64(s.Rules)),
		Sets:      ygot.Uint64(uint64(s.Sets)),
		Elements:  ygot.Uint64(uint64(s.Elements)),
		Endpoints: ygot.Uint64(uint64(s.Endpoints)),
		LastError: ygot.String(s.LastError),
	}
	if !s.LastApply.IsZero() {
		p.LastApply = ygot.String(s.LastApply.UTC().Format(time.RFC3339Nano))
	}
	return t.publish(statusElems("policy"), p)
}

func statusElems(name string) []*gpb.PathElem {
	return []*gpb.PathElem{elem("switchd"), elem("state"), elem(name)}
}

// IPAMBlocks publishes /switchd/ipam/blocks: each block's pool, the
// addresses given out of it and its size; blocks no longer held are
// deleted.
func (t *Tree) IPAMBlocks(bs []IPAMBlock) error {
	var errs joinErrs
	now := make(map[string]bool, len(bs))
	for _, b := range bs {
		key := b.Prefix.String()
		now[key] = true
		blk := &oc.Switchd_Ipam_Block{
			Prefix:    ygot.String(key),
			Allocated: ygot.Uint64(b.Allocated),
			Capacity:  ygot.Uint64(Capacity(b.Prefix)),
		}
		if b.Pool.IsValid() {
			blk.Pool = ygot.String(b.Pool.String())
		}
		errs.add(t.publish(blockElems(key), blk))
	}
	for key := range t.blocks {
		if !now[key] {
			errs.add(t.publish(blockElems(key), nil))
		}
	}
	t.blocks = now
	return errs.err()
}

func blockElems(prefix string) []*gpb.PathElem {
	return []*gpb.PathElem{elem("switchd"), elem("ipam"), elem("blocks"), elem("block", "prefix", prefix)}
}

// Capacity is the number of addresses in p, capped at the largest
// uint64 (an IPv6 block of /64 or shorter holds more).
func Capacity(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return ^uint64(0)
	}
	return uint64(1) << host
}

package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	pnl "github.com/switchd/switchd/platform/netlink"
)

// Engine is switchd's forwarding control in one namespace: it owns the
// Table and composes into it the slot chains of each concern (workload
// policy here; failsafe, anti-spoofing and ACLs plug in through setSlot)
// and the base chains that jump to them (BaseChains).
//
// Inputs are method calls that change desired state only (SetIntent,
// UpsertEndpoint, DeleteEndpoint, SetMembers, AddMembers, ...); Apply sends what
// changed in one nftables transaction. An endpoint change is set and map
// elements only (see workload), so it costs one small transaction however
// many endpoints exist.
//
// Threading: an Engine is not safe for concurrent use; its methods should
// only be called from one goroutine (the daemon's policy loop). Errors
// from the input methods are compile errors (an inconsistent Table call);
// the state they leave is recompiled by the next SetIntent.
type Engine struct {
	tb *Table
	wl *workload
	// slots are the objects other concerns put in the table, by owner
	// ("failsafe", "antispoof", "acl"); each setSlot replaces its owner's.
	slots map[string]*slotObjects
	// bases are the base chains last given to the Table, by name, each as
	// its jump IDs: they are rewritten only when a slot fills or empties.
	bases map[string][]string

	failsafe  *FailsafeConfig // the last SetFailsafe's, for the status
	antiSpoof bool
}

// slotObjects are one concern's chains and sets with their elements.
type slotObjects struct {
	chains []Chain
	sets   []staticSet
}

// NewEngine returns the Engine of ns (nil: the caller's namespace). opts
// configure its Table. It does not touch the kernel until Apply.
func NewEngine(ns *pnl.NS, opts ...Option) *Engine {
	tb := NewTable(ns, opts...)
	return &Engine{tb: tb, wl: newWorkload(tb), slots: map[string]*slotObjects{}, bases: map[string][]string{}}
}

// Table is the engine's table (for tests and counters).
func (e *Engine) Table() *Table { return e.tb }

// SetIntent replaces the workload policy.
func (e *Engine) SetIntent(in Intent) error {
	if err := e.wl.setIntent(in); err != nil {
		return fmt.Errorf("set workload policy: %w", err)
	}
	return nil
}

// UpsertEndpoint adds an endpoint or replaces the one with its ID (a label
// or address change).
func (e *Engine) UpsertEndpoint(ep Endpoint) error {
	if old := e.wl.eps[ep.ID]; old != nil {
		if err := e.spoofElements(old.ep, false); err != nil {
			return fmt.Errorf("upsert endpoint %s: %w", ep.ID, err)
		}
	}
	if err := e.spoofElements(ep, true); err != nil {
		return fmt.Errorf("upsert endpoint %s: %w", ep.ID, err)
	}
	if err := e.wl.upsert(ep); err != nil {
		return fmt.Errorf("upsert endpoint %s: %w", ep.ID, err)
	}
	return nil
}

// DeleteEndpoint removes endpoint id; an unknown id is no error.
func (e *Engine) DeleteEndpoint(id string) error {
	if old := e.wl.eps[id]; old != nil {
		if err := e.spoofElements(old.ep, false); err != nil {
			return fmt.Errorf("delete endpoint %s: %w", id, err)
		}
	}
	if err := e.wl.remove(id); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	return nil
}

// SetMembers is the seam for a second source of selector members: addrs
// are the addresses source (say "bgp") knows to match selector (its
// canonical String), beside the local endpoints that match it. They are
// elements of the selector's sets while some policy uses the selector;
// nil addrs withdraws the source's members. The engine keeps each
// source's members as a set and sends only the difference, but SetMembers
// still reads the whole list: a source that knows what changed uses
// AddMembers and RemoveMembers, which cost the change only.
func (e *Engine) SetMembers(source string, selector Selector, addrs []netip.Addr) error {
	if err := e.wl.setMembers(source, selector.String(), addrs); err != nil {
		return fmt.Errorf("set members of %s from %s: %w", selector, source, err)
	}
	return nil
}

// AddMembers adds addrs to the members source gives selector (see
// SetMembers); one source already gave is no change.
func (e *Engine) AddMembers(source string, selector Selector, addrs ...netip.Addr) error {
	if err := e.wl.addMembers(source, selector.String(), addrs); err != nil {
		return fmt.Errorf("add members of %s from %s: %w", selector, source, err)
	}
	return nil
}

// RemoveMembers takes addrs out of the members source gives selector; one
// source did not give is no change.
func (e *Engine) RemoveMembers(source string, selector Selector, addrs ...netip.Addr) error {
	if err := e.wl.removeMembers(source, selector.String(), addrs); err != nil {
		return fmt.Errorf("remove members of %s from %s: %w", selector, source, err)
	}
	return nil
}

// Plug-in point for the other concerns: each builder (failsafe and
// anti-spoofing: policy/failsafe*.go, policy/antispoof*.go; ACLs:
// policy/acl*.go) compiles its intent into chains named after its slots
// (SlotFailsafeIn, SlotAntiSpoof, SlotACLForward, ...) plus the chains and
// sets those jump to, and its Set method hands them to setSlot
// (engine_slots.go, aclcompile.go).

// setSlot replaces owner's objects with chains and sets: what it no
// longer has is deleted, the rest is desired state the Table diffs.
func (e *Engine) setSlot(owner string, chains []Chain, sets []staticSet) error {
	old := e.slots[owner]
	keepC, keepS := map[string]bool{}, map[string]bool{}
	for _, c := range chains {
		if err := e.tb.SetChain(c); err != nil {
			return fmt.Errorf("set %s: %w", owner, err)
		}
		keepC[c.Name] = true
	}
	for _, s := range sets {
		if err := e.tb.SetSet(s.def); err != nil {
			return fmt.Errorf("set %s: %w", owner, err)
		}
		keepS[s.def.Name] = true
		if old != nil {
			// The old elements leave, the new ones come: one desired set
			// the Table diffs against the kernel's.
			for _, os := range old.sets {
				if os.def.Name == s.def.Name {
					if err := e.tb.DeleteElements(s.def.Name, os.elements...); err != nil {
						return fmt.Errorf("set %s: %w", owner, err)
					}
				}
			}
		}
		if err := e.tb.AddElements(s.def.Name, s.elements...); err != nil {
			return fmt.Errorf("set %s: %w", owner, err)
		}
	}
	if old != nil {
		for _, c := range old.chains {
			if !keepC[c.Name] {
				e.tb.DeleteChain(c.Name)
			}
		}
		for _, s := range old.sets {
			if !keepS[s.def.Name] {
				e.tb.DeleteSet(s.def.Name)
			}
		}
	}
	e.slots[owner] = &slotObjects{chains: slices.Clone(chains), sets: slices.Clone(sets)}
	if len(chains) == 0 && len(sets) == 0 {
		delete(e.slots, owner)
	}
	return nil
}

// filled reports whether some concern has a chain named slot.
func (e *Engine) filled(slot string) bool {
	if e.wl.filled(slot) {
		return true
	}
	for _, o := range e.slots {
		for _, c := range o.chains {
			if c.Name == slot {
				return true
			}
		}
	}
	return false
}

// QueueResync makes the next Apply check the kernel for drift.
func (e *Engine) QueueResync() { e.tb.QueueResync() }

// Apply composes the base chains for the filled slots and converges the
// kernel in one transaction.
func (e *Engine) Apply(ctx context.Context) error {
	want := map[string][]string{}
	for _, c := range BaseChains(e.filled) {
		var ids []string
		for _, r := range c.Rules {
			ids = append(ids, r.ID)
		}
		want[c.Name] = ids
		if !slices.Equal(e.bases[c.Name], ids) {
			if err := e.tb.SetChain(c); err != nil {
				return fmt.Errorf("apply policy: %w", err)
			}
		}
	}
	for name := range e.bases {
		if _, ok := want[name]; !ok {
			e.tb.DeleteChain(name)
		}
	}
	e.bases = want
	return e.tb.Apply(ctx)
}

// Status is what the daemon shows of the engine.
type Status struct {
	InSync bool
	Counts
	Profiles  int // profile chains of workload policy
	Endpoints int
	LastError error
	// FailsafeKept says which failsafe services a workload policy would
	// have cut: the policy is applied, but these stay reachable.
	FailsafeKept []string
}

// Counters reads the per-rule counters of the table from the kernel (ACL
// entries, default drops), by rule ID.
func (e *Engine) Counters() ([]RuleCounter, error) { return e.tb.Counters() }

// Status reports the engine's state, from memory.
func (e *Engine) Status() Status {
	return Status{
		InSync:    e.tb.InSync(),
		Counts:    e.tb.Counts(),
		Profiles:  len(e.wl.profiles),
		Endpoints: len(e.wl.eps),
		LastError: e.tb.LastError(),

		FailsafeKept: e.failsafeKept(),
	}
}

// Close releases the engine's socket; the table stays in the kernel.
func (e *Engine) Close() error { return e.tb.Close() }

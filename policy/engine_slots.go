package policy

import (
	"fmt"
	"slices"
	"strings"
)

// The other concerns' slots, as the Engine fills them (SetACL is with the
// ACL compiler, aclcompile.go).

// SetFailsafe replaces what the failsafe rules keep beside the fixed list
// (the BGP neighbors, the gNMI port, the extra ports). The chains are the
// same for any config, so after the first call a change is elements only.
func (e *Engine) SetFailsafe(c FailsafeConfig) error {
	chains, sets, elems := failsafeSlots(c)
	ss := make([]staticSet, len(sets))
	for i, s := range sets {
		ss[i] = staticSet{def: s, elements: elems[s.Name]}
	}
	e.failsafe = &c
	return e.setSlot("failsafe", chains, ss)
}

// SetAntiSpoof turns anti-spoofing on or off: on, a packet from an
// endpoint's interface with a source that is not one of its addresses is
// dropped in prerouting; each endpoint is elements of the slot's sets,
// kept by UpsertEndpoint and DeleteEndpoint.
func (e *Engine) SetAntiSpoof(on bool) error {
	if on == e.antiSpoof {
		return nil
	}
	e.antiSpoof = on
	if !on {
		// The sets go with their elements.
		return e.setSlot("antispoof", nil, nil)
	}
	chain, sets := antiSpoofSlot()
	ss := make([]staticSet, len(sets))
	for i, s := range sets {
		ss[i] = staticSet{def: s}
	}
	if err := e.setSlot("antispoof", []Chain{chain}, ss); err != nil {
		return err
	}
	for _, w := range e.wl.eps {
		if err := e.spoofElements(w.ep, true); err != nil {
			return err
		}
	}
	return nil
}

// spoofElements adds (or deletes) ep's anti-spoofing elements, when
// anti-spoofing is on.
func (e *Engine) spoofElements(ep Endpoint, add bool) error {
	if !e.antiSpoof {
		return nil
	}
	for set, es := range antiSpoofElements(ep) {
		var err error
		if add {
			err = e.tb.AddElements(set, es...)
		} else {
			err = e.tb.DeleteElements(set, es...)
		}
		if err != nil {
			return fmt.Errorf("anti-spoofing of endpoint %s: %w", ep.ID, err)
		}
	}
	return nil
}

// failsafeKept lists, for the status, the failsafe services workload
// policy would cut for the endpoints it selects for egress (their
// traffic to the host passes the failsafe chain first, so it is not cut).
func (e *Engine) failsafeKept() []string {
	if e.failsafe == nil {
		return nil
	}
	var out []string
	for _, p := range e.wl.intent.Policies {
		if !p.SelectsEgress {
			continue
		}
		// Selected for egress: what no rule allows is dropped, so every
		// service is cut unless allowed; deny rules cut what they match.
		var cut []FailsafeService
		allowed := func(s FailsafeService) bool {
			return slices.ContainsFunc(p.Egress, func(r Rule) bool {
				return r.Action == Allow && r.Peer.Selector == nil && len(r.Peer.CIDRs) == 0 &&
					(r.Protocol == 0 || r.Protocol == s.Proto) &&
					(len(r.DstPorts) == 0 || !HasPorts(s.Proto) || slices.ContainsFunc(r.DstPorts, func(pr PortRange) bool {
						return pr.First <= s.Port && s.Port <= pr.Last
					}))
			})
		}
		for _, s := range e.failsafe.Services() {
			if !allowed(s) {
				cut = append(cut, s)
			}
		}
		if len(cut) > 0 {
			names := make([]string, len(cut))
			for i, s := range cut {
				names[i] = s.String()
			}
			out = append(out, fmt.Sprintf("workload policy %s would cut %s from the endpoints it selects to the host: kept by the failsafe rules",
				p.Name, strings.Join(names, ", ")))
		}
	}
	return out
}

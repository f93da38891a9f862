package policy

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Workload interfaces fail closed. The workload slots do not look up an
// endpoint's map element in place: they jump to a dispatch chain per
// direction (wl-from-if: iifname, wl-to-if: oifname) whose first rule is
// the map lookup, each element a goto to the endpoint's chain (a profile,
// wl-deny, or the empty wl-open of an endpoint no policy selects while
// Default is Allow), and whose second rule drops what reaches it on an
// interface in wl-ifaces: one with a workload interface's name
// (Intent.Interfaces: the host's veth prefix, configured VMs' taps) that
// no endpoint holds. A goto returns past the dispatch chain, so a known
// endpoint never reaches the drop. So between the moment an interface goes
// up (host creates a veth, a route to it lands) and the moment policy
// has its endpoint, the workload is cut off, not open (Calico's felix
// drops "unknown interface" the same way). With no policy at all the
// slots are empty and nothing is dropped.
const (
	wlFromChain = "wl-from-if" // iifname dispatch
	wlToChain   = "wl-to-if"   // oifname dispatch
	wlOpenChain = "wl-open"    // empty: an endpoint with nothing to check
	wlIfaceSet  = "wl-ifaces"  // interval set of workload interface names
)

// dispatchChains are the two dispatch chains.
func dispatchChains() []Chain {
	return []Chain{
		{Name: wlFromChain, Rules: []ChainRule{vmapRule(wlFromMap, true), unknownDrop(true)}},
		{Name: wlToChain, Rules: []ChainRule{vmapRule(wlToMap, false), unknownDrop(false)}},
		{Name: wlOpenChain},
	}
}

// unknownDrop is `iifname @wl-ifaces counter drop` (or oifname).
func unknownDrop(iif bool) ChainRule {
	k, id := expr.MetaKeyOIFNAME, "to unknown workload interface"
	if iif {
		k, id = expr.MetaKeyIIFNAME, "from unknown workload interface"
	}
	return ChainRule{ID: id, Exprs: []expr.Any{
		&expr.Meta{Key: k, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: wlIfaceSet},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}}
}

// mapElement is interface iface's element in a workload map: a goto to
// chain, or to wl-open if it has none.
func mapElement(iface, chain string) Element {
	if chain == "" {
		chain = wlOpenChain
	}
	return Element{Key: IfName(iface), Jump: chain, Goto: true}
}

// ifaceElements are the ranges of interface names patterns cover: a
// pattern ending in "*" every name it starts (never all names: a lone
// "*" is skipped, as is anything no interface can be called), any other
// that name; overlapping and touching ranges merged (an interval set
// refuses both).
func ifaceElements(patterns []string) []Element {
	var es []Element
	for _, p := range patterns {
		name, prefix := strings.CutSuffix(p, "*")
		if name == "" || len(name) > 15 || strings.ContainsRune(name, 0) {
			continue
		}
		e := Element{Key: IfName(name), KeyEnd: IfName(name)}
		if prefix {
			for i := len(name); i < len(e.KeyEnd); i++ {
				e.KeyEnd[i] = 0xff
			}
		}
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b Element) int { return bytes.Compare(a.Key, b.Key) })
	var out []Element
	for _, e := range es {
		if n := len(out); n > 0 && bytes.Compare(e.Key, successor(out[n-1].KeyEnd)) <= 0 {
			if bytes.Compare(e.KeyEnd, out[n-1].KeyEnd) > 0 {
				out[n-1].KeyEnd = e.KeyEnd
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// successor is the key after k (k itself if none is).
func successor(k []byte) []byte {
	s := slices.Clone(k)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]++; s[i] != 0 {
			return s
		}
	}
	return k
}

// setIfaces makes wl-ifaces hold the intent's interface names, sending
// only a change.
func (w *workload) setIfaces() error {
	es := ifaceElements(w.intent.Interfaces)
	if reflect.DeepEqual(es, w.ifElems) {
		return nil
	}
	if err := w.tb.DeleteElements(wlIfaceSet, w.ifElems...); err != nil {
		return fmt.Errorf("workload interfaces: %w", err)
	}
	if err := w.tb.AddElements(wlIfaceSet, es...); err != nil {
		return fmt.Errorf("workload interfaces: %w", err)
	}
	w.ifElems = es
	return nil
}

// ifaceSetDef is wl-ifaces' definition.
var ifaceSetDef = Set{Name: wlIfaceSet, KeyType: nftables.TypeIFName, Interval: true}

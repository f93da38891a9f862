package policy

import (
	"slices"
	"testing"

	"github.com/google/nftables/expr"
)

// TestBaseChainsJumpToFilledSlotsInOrder: failsafe comes before the ACLs
// and workload policy in the same base chain (an accept in a chain jumped
// to is final for that base chain only), and an unfilled slot costs
// nothing.
func TestBaseChainsJumpToFilledSlotsInOrder(t *testing.T) {
	filled := map[string]bool{SlotFailsafeIn: true, SlotACLInput: true, SlotWorkloadForward: true}
	got := map[string][]string{}
	for _, c := range BaseChains(func(s string) bool { return filled[s] }) {
		if c.Hook == nil || c.Policy == nil {
			t.Errorf("chain %s is not a base chain with a policy", c.Name)
		}
		for _, r := range c.Rules {
			v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
			if !ok || v.Kind != expr.VerdictJump {
				t.Fatalf("chain %s rule %s is not a jump", c.Name, r.ID)
			}
			got[c.Name] = append(got[c.Name], v.Chain)
		}
	}
	want := map[string][]string{
		"input":   {SlotFailsafeIn, SlotACLInput},
		"forward": {SlotWorkloadForward},
	}
	if len(got) != len(want) {
		t.Errorf("base chains %v, want %v", got, want)
	}
	for name, slots := range want {
		if !slices.Equal(got[name], slots) {
			t.Errorf("%s jumps to %v, want %v", name, got[name], slots)
		}
	}
}

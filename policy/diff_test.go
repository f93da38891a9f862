package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestDiffRules checks the edits and their order: applying them to the
// kernel's list (deletes, then each insert before its handle or at the end)
// must give the desired list, keep every rule it can, and never touch a
// rule that is already right.
func TestDiffRules(t *testing.T) {
	for _, tc := range []struct {
		have, want string // identities, one letter each; "?" is not ours
		dels, ins  int
	}{
		{"", "", 0, 0},
		{"abc", "abc", 0, 0},
		{"", "abc", 0, 3},
		{"abc", "", 3, 0},
		{"abc", "axbc", 0, 1},
		{"abc", "abcx", 0, 1},
		{"abc", "xabc", 0, 1},
		{"abc", "ac", 1, 0},
		{"abc", "cab", 1, 1},
		{"a?c", "abc", 1, 1},
		{"aab", "ab", 1, 0},
		{"abcdef", "fedcba", 5, 5},
		{"abcdef", "axcyef", 2, 2},
	} {
		t.Run(fmt.Sprintf("%s->%s", tc.have, tc.want), func(t *testing.T) {
			var have []kernelRule
			for i, c := range tc.have {
				id := string(c)
				if id == "?" {
					id = ""
				}
				have = append(have, kernelRule{handle: uint64(100 + i), id: id})
			}
			want := strings.Split(tc.want, "")
			dels, ins := diffRules(have, want)
			if len(dels) != tc.dels || len(ins) != tc.ins {
				t.Errorf("%d deletes, %d inserts; want %d, %d", len(dels), len(ins), tc.dels, tc.ins)
			}
			// Replay on a model of the chain.
			type r struct {
				h  uint64
				id string
			}
			var chain []r
			for _, k := range have {
				if !slices.Contains(dels, k.handle) {
					chain = append(chain, r{k.handle, k.id})
				}
			}
			for _, in := range ins {
				nr := r{0, want[in.idx]}
				if in.before == 0 {
					chain = append(chain, nr)
					continue
				}
				i := slices.IndexFunc(chain, func(x r) bool { return x.h == in.before })
				if i < 0 {
					t.Fatalf("insert before handle %d, which is gone", in.before)
				}
				chain = slices.Insert(chain, i, nr)
			}
			var got []string
			for _, x := range chain {
				got = append(got, x.id)
			}
			if !slices.Equal(got, want) {
				t.Errorf("edits give %v, want %v", got, want)
			}
		})
	}
}

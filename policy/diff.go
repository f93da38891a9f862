package policy

// insert is a desired rule to insert: before the kernel rule with handle
// before, or at the end of the chain if before is 0.
type insert struct {
	idx    int // index in the desired rules
	before uint64
}

// diffRules turns the kernel's rules into the desired identities with the
// fewest edits that keep order: the longest common subsequence stays (same
// handles, same counters), every other kernel rule is deleted and every
// other desired rule is inserted before the next rule that stays. Inserts
// are in desired order, so a run inserted before one handle keeps its order.
func diffRules(have []kernelRule, want []string) (dels []uint64, ins []insert) {
	// Trim the common prefix and suffix: the usual edit is small.
	pre := 0
	for pre < len(have) && pre < len(want) && have[pre].id != "" && have[pre].id == want[pre] {
		pre++
	}
	suf := 0
	for suf < len(have)-pre && suf < len(want)-pre && have[len(have)-1-suf].id != "" &&
		have[len(have)-1-suf].id == want[len(want)-1-suf] {
		suf++
	}
	h, w := have[pre:len(have)-suf], want[pre:len(want)-suf]
	// lcs[i][j] is the LCS length of h[i:] and w[j:].
	lcs := make([][]int32, len(h)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(w)+1)
	}
	for i := len(h) - 1; i >= 0; i-- {
		for j := len(w) - 1; j >= 0; j-- {
			switch {
			case h[i].id != "" && h[i].id == w[j]:
				lcs[i][j] = lcs[i+1][j+1] + 1
			case lcs[i+1][j] >= lcs[i][j+1]:
				lcs[i][j] = lcs[i+1][j]
			default:
				lcs[i][j] = lcs[i][j+1]
			}
		}
	}
	// Walk it: kept pairs, deleted kernel rules, desired rules waiting for
	// the next kept handle.
	next := uint64(0)
	if suf > 0 {
		next = have[len(have)-suf].handle
	}
	var waiting []int
	place := func(before uint64) {
		for _, j := range waiting {
			ins = append(ins, insert{idx: pre + j, before: before})
		}
		waiting = waiting[:0]
	}
	i, j := 0, 0
	for i < len(h) || j < len(w) {
		switch {
		case i < len(h) && j < len(w) && h[i].id != "" && h[i].id == w[j] && lcs[i][j] == lcs[i+1][j+1]+1:
			place(h[i].handle)
			i++
			j++
		case i < len(h) && (j == len(w) || lcs[i+1][j] >= lcs[i][j+1]):
			dels = append(dels, h[i].handle)
			i++
		default:
			waiting = append(waiting, j)
			j++
		}
	}
	place(next)
	return dels, ins
}

package daemon

import "testing"

// TestGCPercent: small heaps collect at the small-node percent, large ones
// at Go's default, and a heap between the two bounds keeps what it had,
// so one growing and shrinking around a bound does not flip every cycle.
func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		live          uint64
		current, want int32
	}{
		{5 << 20, 100, 50},
		{5 << 20, 50, 50},
		{40 << 20, 50, 50},
		{40 << 20, 100, 100},
		{200 << 20, 50, 100},
		{smallHeap, 100, 100},
		{smallHeap - 1, 100, 50},
	} {
		if got := gcPercent(c.live, c.current, 50); got != c.want {
			t.Errorf("gcPercent(%d MiB, current %d) = %d, want %d", c.live>>20, c.current, got, c.want)
		}
	}
}

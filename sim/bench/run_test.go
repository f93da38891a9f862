package bench

import (
	"context"
	"fmt"
	"testing"
)

// TestBGPToFIBPrivileged runs each installed receiver once with a small
// table: the source's routes must all reach its FIB (RIB for GoBGP alone),
// as the kernel dump or the GoBGP table confirms inside Run.
func TestBGPToFIBPrivileged(t *testing.T) {
	for i, r := range Receivers {
		t.Run(r.Name, func(t *testing.T) {
			bin := binaries(t, r)
			if miss := r.Missing(bin); len(miss) > 0 {
				t.Skipf("receiver %s: missing %v", r.Name, miss)
			}
			res, err := Run(context.Background(), r, bin, 3000, fmt.Sprintf("t%d", i), false)
			if err != nil {
				t.Fatal(err)
			}
			if res.N != 3000 || res.Elapsed <= 0 || res.PeakRSS == 0 {
				t.Errorf("implausible result %+v", res)
			}
		})
	}
}

package platform

import (
	"strings"
	"testing"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim/ns"
)

// The multipath hash policy is set per namespace (moved from fib).
func TestPrivilegedMultipathHashPolicy(t *testing.T) {
	ns.Privileged(t)
	r, peer := ns.NewT(t, "hash-r"), ns.NewT(t, "hash-p")
	if err := SetMultipathHashPolicy(r.Net(), fib.DefaultHashPolicy); err != nil {
		t.Fatal(err)
	}
	v4, v6, err := MultipathHashPolicy(r.Net())
	if err != nil || v4 != fib.HashL4 || v6 != fib.HashL4 {
		t.Fatalf("policies %d %d %v, want 1 1", v4, v6, err)
	}
	// The peer namespace is another one: untouched.
	if v4, _, _ := MultipathHashPolicy(peer.Net()); v4 != fib.HashL3 {
		t.Errorf("peer namespace's policy changed to %d", v4)
	}
	if err := SetMultipathHashPolicy(r.Net(), 7); err == nil || !strings.Contains(err.Error(), "7") {
		t.Errorf("bad policy accepted: %v", err)
	}
	if v4, _, _ := MultipathHashPolicy(r.Net()); v4 != fib.HashL4 {
		t.Errorf("a rejected policy changed the setting to %d", v4)
	}
}

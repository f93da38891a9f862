package daemon

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/platform"
)

// TestWiringStatePlatform: a daemon on fakes whose platform root is the
// fake Spectrum switch publishes its components and what detection
// concluded, and marks the interfaces that are the ASIC's ports as
// switchdev (from the tree's sysfs), the others not.
func TestWiringStatePlatform(t *testing.T) {
	pub, ls := newStatePub(), &testLinkStats{}
	ls.set(platform.LinkStats{Index: 3, Name: "swp1", Type: unix.ARPHRD_ETHER, Flags: unix.IFF_UP, OperState: platform.OperUp, MTU: 9000},
		platform.LinkStats{Index: 2, Name: "eth0", Type: unix.ARPHRD_ETHER, Flags: unix.IFF_UP, OperState: platform.OperUp, MTU: 1500})
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, func(w *wired) { w.state = pub })
	w.d.linkStats = ls
	w.d.opts.PlatformRoot = "../../testdata/platform/spectrum"
	w.run(t)
	for path, want := range map[string]string{
		"components/component[name=chassis]/state/serial-no":              "MT1822X05367",
		"components/component[name=chassis]/state/mfg-name":               "Mellanox Technologies Ltd.",
		"components/component[name=asic0]/state/description":              "Spectrum",
		"components/component[name=port1]/state/description":              "swp1",
		"components/component[name=port4]/state/oper-status":              "INACTIVE",
		"components/component[name=mlxsw/asic]/state/temperature/instant": "double_val:52",
		"switchd/state/platform/kind":                                     "SWITCH",
		"switchd/state/platform/asic":                                     "Spectrum",
		"interfaces/interface[name=swp1]/state/hardware/switchdev":        "true",
		"interfaces/interface[name=swp1]/state/hardware/switch-id":        "7cfe90f26640",
		"interfaces/interface[name=swp1]/state/hardware/port-name":        "p1",
		"interfaces/interface[name=eth0]/state/hardware/switchdev":        "false",
	} {
		pub.waitLeaf(t, path, want, false)
	}
	if ws := pub.under("switchd/state/platform/warning"); len(ws) != 0 {
		t.Errorf("warnings for a valid switch tree: %v", ws)
	}
}

// offloadingTable is the test table with a driver's flags counted, as
// fib.Table counts them.
type offloadingTable struct {
	*testTable
	counts fib.OffloadCounts
}

func (t offloadingTable) OffloadCounts() fib.OffloadCounts { return t.counts }

// TestWiringStatusOffloadCounts: after an Apply, the FIB's counts of
// offloaded, trapped and offload-failed routes are in the local API's
// status and in /switchd/state/fib.
func TestWiringStatusOffloadCounts(t *testing.T) {
	pub := newStatePub()
	w := newWired(t, testConfig{neighbors: []string{"10.0.1.1"}}, func(w *wired) { w.state = pub })
	w.d.table = offloadingTable{w.tb, fib.OffloadCounts{Offloaded: 7, Trapped: 2, Failed: 1}}
	w.run(t)
	w.mon.publish(false) // a loop turn: an Apply, its status published
	for leaf, want := range map[string]string{"offloaded": "7", "trapped": "2", "offload-failed": "1"} {
		pub.waitLeaf(t, "switchd/state/fib/"+leaf, want, false)
	}
	if f := w.d.status.load().FIB; f.Offloaded != 7 || f.Trapped != 2 || f.OffloadFailed != 1 {
		t.Errorf("status FIB %+v, want 7 offloaded, 2 trapped, 1 failed", f)
	}
}

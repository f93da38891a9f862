package sim

import (
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

// A fabric about to hold more namespaces than the machine's neighbour
// tables have room for raises both families' thresholds, keeps what it
// found, and the last fabric down puts that back and forgets it.
func TestNeighRoomPrivileged(t *testing.T) {
	ns.Privileged(t)
	if _, err := os.Stat(neighStateFile); err == nil {
		t.Skipf("%s exists: another fabric holds raised thresholds", neighStateFile)
	}
	n, err := initNet()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	before, err := readSysctls(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var vals []pnl.Sysctl
		for i, k := range neighKeys {
			vals = append(vals, pnl.Sysctl{Path: k, Value: strconv.Itoa(before[i])})
		}
		n.WriteSysctls(vals...)
		os.Remove(neighStateFile)
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	const more = 100000
	if err := ensureNeighRoom(log, more); err != nil {
		t.Fatal(err)
	}
	raised, err := readSysctls(n)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(neighKeys); i += 2 {
		if raised[i] < neighPerNamespace*more || raised[i-1] >= raised[i] {
			t.Errorf("after a raise for %d namespaces: %s=%d %s=%d", more, neighKeys[i-1], raised[i-1], neighKeys[i], raised[i])
		}
	}
	if _, err := os.Stat(neighStateFile); err != nil {
		t.Fatalf("the thresholds found are not kept: %v", err)
	}
	// A second raise for fewer namespaces changes nothing, and does not
	// overwrite what the first one kept.
	if err := ensureNeighRoom(log, 10); err != nil {
		t.Fatal(err)
	}
	if again, _ := readSysctls(n); !slices.Equal(again, raised) {
		t.Errorf("a smaller raise changed the thresholds: %v, were %v", again, raised)
	}
	if err := restoreNeighRoomIf(log, func() (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	if now, _ := readSysctls(n); !slices.Equal(now, raised) {
		t.Errorf("restored while other fabrics are up: %v", now)
	}
	if err := restoreNeighRoomIf(log, func() (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	if now, _ := readSysctls(n); !slices.Equal(now, before) {
		t.Errorf("after the last fabric down: %v, want %v as found", now, before)
	}
	if _, err := os.Stat(neighStateFile); err == nil {
		t.Errorf("%s still there after the restore", neighStateFile)
	}
}

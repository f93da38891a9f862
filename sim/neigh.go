package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	pnl "github.com/switchd/switchd/platform/netlink"
	"github.com/switchd/switchd/sim/ns"
)

// The kernel's neighbour tables (ARP and NDISC) are one per machine,
// shared by every network namespace, and gc_thresh3 (1024 by default)
// caps the entries of all namespaces together: past it the kernel drops
// the new entry and the packet waiting for it ("neighbor table
// overflow"). A real host or switch has a kernel of its own; a simulated
// fabric of hundreds of nodes and thousands of workloads shares one, and
// a 200-host run lost pings to it. So a fabric about to add namespaces
// raises the thresholds when they are short, and the last fabric down
// puts back what the first one found (neighStateFile).

// neighPerNamespace is the entries counted per namespace and family: a
// workload holds about two (its gateway, and its host's side for it), a
// fabric node two per link. When the tables are short of that, they are
// raised to twice it, so small fabrics leave the defaults alone.
const neighPerNamespace = 8

// neighStateFile keeps the thresholds found before the first raise, for
// the last fabric down to restore.
var neighStateFile = filepath.Join(os.TempDir(), "switchd-sim-neigh.json")

var (
	neighMu sync.Mutex
	// neighAdds counts workloads added; every neighBatch-th checks the
	// room for the next neighBatch, so adding one costs no directory read.
	neighAdds atomic.Int64
)

const neighBatch = 64

// neighRoomForWorkload is called before a workload's namespace is made.
func (f *Fabric) neighRoomForWorkload() error {
	if neighAdds.Add(1)%neighBatch != 1 {
		return nil
	}
	return ensureNeighRoom(f.log, neighBatch)
}

// neighKeys are the sysctls raised: gc_thresh2 and gc_thresh3 of each
// family, in that order (thresh2 below thresh3 at every step).
var neighKeys = []string{
	"net/ipv4/neigh/default/gc_thresh2", "net/ipv4/neigh/default/gc_thresh3",
	"net/ipv6/neigh/default/gc_thresh2", "net/ipv6/neigh/default/gc_thresh3",
}

// ensureNeighRoom raises the neighbour tables' thresholds, if they are
// short, for the namespaces that exist plus more about to be made.
func ensureNeighRoom(log *slog.Logger, more int) error {
	neighMu.Lock()
	defer neighMu.Unlock()
	have, err := ns.List("")
	if err != nil {
		return err
	}
	need := neighPerNamespace * (len(have) + more)
	n, err := initNet()
	if err != nil {
		return err
	}
	defer n.Close()
	cur, err := readSysctls(n)
	if err != nil {
		return err
	}
	var raise []pnl.Sysctl
	for i := 0; i < len(neighKeys); i += 2 {
		if cur[i+1] < need {
			raise = append(raise, pnl.Sysctl{Path: neighKeys[i], Value: strconv.Itoa(need)},
				pnl.Sysctl{Path: neighKeys[i+1], Value: strconv.Itoa(2 * need)})
		}
	}
	if len(raise) == 0 {
		return nil
	}
	if _, err := os.Stat(neighStateFile); errors.Is(err, os.ErrNotExist) {
		saved := make(map[string]int, len(neighKeys))
		for i, k := range neighKeys {
			saved[k] = cur[i]
		}
		b, _ := json.Marshal(saved)
		if err := os.WriteFile(neighStateFile, b, 0o644); err != nil {
			return fmt.Errorf("keep the neighbour thresholds: %w", err)
		}
	}
	if err := n.WriteSysctls(raise...); err != nil {
		return err
	}
	log.Info("raised the machine's neighbour table thresholds for the simulated fabric (every namespace shares them)",
		"gc_thresh3", 2*need, "namespaces", len(have)+more, "restored-by", "the last sim fabric down")
	return nil
}

// restoreNeighRoom puts back the thresholds found before the first raise
// once no namespace of switchd's tools is left.
func restoreNeighRoom(log *slog.Logger) error {
	return restoreNeighRoomIf(log, func() (bool, error) {
		left, err := ns.List(ns.BasePrefix)
		// A test binary runs in a namespace of its own (ns.TestMain).
		left = slices.DeleteFunc(left, func(n string) bool { return n == os.Getenv(ns.TestNetnsEnv) })
		return err == nil && len(left) == 0, err
	})
}

// restoreNeighRoomIf restores the saved thresholds if last says this is
// the last fabric.
func restoreNeighRoomIf(log *slog.Logger, last func() (bool, error)) error {
	neighMu.Lock()
	defer neighMu.Unlock()
	if ok, err := last(); !ok {
		return err
	}
	b, err := os.ReadFile(neighStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var saved map[string]int
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("%s: %w", neighStateFile, err)
	}
	var vals []pnl.Sysctl
	for _, k := range neighKeys { // thresh2 first: it must stay below thresh3
		if v, ok := saved[k]; ok {
			vals = append(vals, pnl.Sysctl{Path: k, Value: strconv.Itoa(v)})
		}
	}
	n, err := initNet()
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.WriteSysctls(vals...); err != nil {
		return err
	}
	log.Info("restored the machine's neighbour table thresholds", "values", saved)
	return os.Remove(neighStateFile)
}

// initNet opens the namespace whose thresholds count: they exist in the
// machine's first network namespace only, and a test runs in one of its
// own (ns.TestMain), so it is the nearest ancestor process's namespace
// that has them. (PID 1's namespace is not open to us on every machine.)
func initNet() (*pnl.NS, error) {
	for pid := os.Getpid(); pid > 1; pid = parentPID(pid) {
		n, err := pnl.OpenNS(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return nil, err
		}
		if _, err := n.ReadSysctl(neighKeys[1]); err == nil {
			return n, nil
		}
		n.Close()
	}
	return nil, fmt.Errorf("no ancestor of this process is in a namespace with %s", neighKeys[1])
}

// parentPID is pid's parent, 0 if unknown.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// readSysctls reads neighKeys in n.
func readSysctls(n *pnl.NS) ([]int, error) {
	out := make([]int, len(neighKeys))
	for i, k := range neighKeys {
		v, err := n.ReadSysctl(k)
		if err != nil {
			return nil, err
		}
		if out[i], err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return out, nil
}

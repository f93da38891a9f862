package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netns"

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

// neighKeys are the sysctls raised, per family.
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
	cur, err := readSysctls(neighKeys)
	if err != nil {
		return err
	}
	var raise []string
	for i := 1; i < len(neighKeys); i += 2 {
		if cur[i] < need {
			raise = append(raise, neighKeys[i-1], neighKeys[i])
		}
	}
	if len(raise) == 0 {
		return nil
	}
	need *= 2
	if _, err := os.Stat(neighStateFile); errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(map[string]int{neighKeys[0]: cur[0], neighKeys[1]: cur[1], neighKeys[2]: cur[2], neighKeys[3]: cur[3]})
		if err := os.WriteFile(neighStateFile, b, 0o644); err != nil {
			return fmt.Errorf("keep the neighbour thresholds: %w", err)
		}
	}
	for i := 0; i < len(raise); i += 2 {
		if err := writeSysctl(raise[i], need/2); err != nil {
			return err
		}
		if err := writeSysctl(raise[i+1], need); err != nil {
			return err
		}
	}
	log.Info("raised the machine's neighbour table thresholds for the simulated fabric (every namespace shares them)",
		"gc_thresh3", need, "namespaces", len(have)+more, "restored-by", "the last sim fabric down")
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
	// thresh2 must stay below thresh3: lower thresh2 first.
	for _, k := range neighKeys {
		if v, ok := saved[k]; ok {
			if err := writeSysctl(k, v); err != nil {
				return err
			}
		}
	}
	log.Info("restored the machine's neighbour table thresholds", "values", saved)
	return os.Remove(neighStateFile)
}

// The thresholds exist in the machine's first network namespace only,
// and a test runs in a namespace of its own (ns.TestMain), so they are
// read and written from the nearest ancestor process's namespace that
// has them: /proc/sys/net is the namespace of the thread that opens it.
// (PID 1's namespace is not open to us on every machine.)
func inInitNet(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	entered := false
	for pid := os.Getpid(); pid > 1 && !hasNeighSysctls(); pid = parentPID(pid) {
		h, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", parentPID(pid)))
		if err != nil {
			break
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			break
		}
		entered = true
	}
	ferr := f()
	if entered {
		if err := netns.Set(orig); err != nil {
			// This thread is in the wrong namespace: let it die with the
			// goroutine rather than serve another one.
			runtime.Goexit()
		}
	}
	return ferr
}

func hasNeighSysctls() bool {
	_, err := os.Stat(filepath.Join("/proc/sys", neighKeys[0]))
	return err == nil
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

func readSysctls(keys []string) ([]int, error) {
	out := make([]int, len(keys))
	err := inInitNet(func() error {
		for i, k := range keys {
			b, err := os.ReadFile(filepath.Join("/proc/sys", k))
			if err != nil {
				return err
			}
			if out[i], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	})
	return out, err
}

func writeSysctl(key string, v int) error {
	return inInitNet(func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(strconv.Itoa(v)), 0o644); err != nil {
			return fmt.Errorf("set %s: %w", strings.ReplaceAll(key, "/", "."), err)
		}
		return nil
	})
}

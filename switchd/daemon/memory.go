package daemon

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"

	"github.com/switchd/switchd/switchd/config"
)

// releaseStartupMemory gives back what loading a config needed and a
// running daemon does not. The unzipped OpenConfig schema (~5 MiB live)
// is used only to check and unmarshal a config; unzipping it also leaves
// ~25 MiB of garbage, and a daemon that then idles with a few MiB of live
// heap would not collect it for minutes (a forced GC every two minutes)
// nor return the freed pages promptly. So, once start-up or a reload is
// done: drop the schema (the next reload unzips it again, ~70 ms), collect,
// and return the free pages to the OS. An idle host node's private memory
// goes from ~30 MiB to ~10 (docs/PERFORMANCE.md, "Idle memory").
func releaseStartupMemory() {
	config.ReleaseSchema()
	debug.FreeOSMemory()
}

// smallHeap is the live heap under which the daemon collects at its
// small-node GOGC (Options.SmallHeapGOGC); above it Go's default of 100.
// An idle host or sim node holds ~5 MiB live, a leaf with a full table
// hundreds: the latter keeps the default's CPU, the former costs less
// memory per node, which is what bounds a simulated fabric's size.
const (
	smallHeap     = 32 << 20
	smallHeapExit = 48 << 20 // hysteresis: back to small below smallHeap
)

// gcTuner sets the GC percent from the live heap after each collection:
// memory ≈ live × (1 + GOGC/100), and GC CPU ≈ allocation rate / GOGC,
// so a low GOGC costs little while the heap is small (its collections are
// short) and the node is mostly idle (it allocates little), and the
// default is kept where collections are long. It runs on the finalizer
// goroutine, once per GC cycle, and does nothing while the percent is
// unchanged.
type gcTuner struct {
	small   int // GOGC for small heaps
	current atomic.Int32
	sample  []metrics.Sample
}

var tuneOnce sync.Once

// tuneGC starts the tuner, once per process (tests run many daemons in
// one); small <= 0, or a GOGC set in the environment (the operator's
// choice), leaves Go's default alone.
func tuneGC(small int) {
	if small <= 0 || os.Getenv("GOGC") != "" {
		return
	}
	tuneOnce.Do(func() {
		t := &gcTuner{small: small, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
		t.current.Store(100)
		t.arm()
		t.tune()
	})
}

// arm makes the next GC cycle call tune: the finalizer of an object only
// this closure knew runs after the cycle that found it unreachable.
func (t *gcTuner) arm() {
	s := new([16]byte) // not a tiny allocation, which finalizers may miss
	runtime.SetFinalizer(s, func(*[16]byte) {
		t.tune()
		t.arm()
	})
}

func (t *gcTuner) tune() {
	metrics.Read(t.sample)
	want := gcPercent(t.sample[0].Value.Uint64(), t.current.Load(), int32(t.small))
	if t.current.Swap(want) != want {
		debug.SetGCPercent(int(want))
	}
}

// gcPercent is the GC percent for a live heap, given the current one:
// small under smallHeap, 100 over smallHeapExit, unchanged in between.
func gcPercent(live uint64, current, small int32) int32 {
	switch {
	case live < smallHeap:
		return small
	case live > smallHeapExit:
		return 100
	}
	return current
}

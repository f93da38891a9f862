//go:build memdebug

package daemon

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
)

// A memdebug build (go build -tags memdebug ./switchd) answers SIGUSR2 by
// writing where its memory goes into $SWITCHD_MEMDEBUG_DIR (default /tmp):
// heap-PID.pb.gz (run with GODEBUG=memprofilerate=1 so that package inits
// are profiled too), goroutines-PID.txt and runtime-PID.txt (every
// runtime/metrics value). It is how the breakdown in docs/PERFORMANCE.md
// ("Issue 15 — per-node cost") was taken; the daemon proper has no such
// hook, so this file is not in a normal build.
func init() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	go func() {
		for range ch {
			dir := os.Getenv("SWITCHD_MEMDEBUG_DIR")
			if dir == "" {
				dir = os.TempDir()
			}
			memDump(dir, os.Getpid())
		}
	}()
}

func memDump(dir string, pid int) {
	write := func(name, ext string, f func(*os.File) error) {
		fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.%s", name, pid, ext)))
		if err != nil {
			return
		}
		defer fh.Close()
		f(fh)
	}
	// Not collected first: the dump shows the heap as the daemon left it
	// (the profile itself is as of the last GC).
	write("runtime", "txt", func(fh *os.File) error {
		descs := metrics.All()
		s := make([]metrics.Sample, len(descs))
		for i := range s {
			s[i].Name = descs[i].Name
		}
		metrics.Read(s)
		for _, m := range s {
			switch m.Value.Kind() {
			case metrics.KindUint64:
				fmt.Fprintf(fh, "%s %d\n", m.Name, m.Value.Uint64())
			case metrics.KindFloat64:
				fmt.Fprintf(fh, "%s %g\n", m.Name, m.Value.Float64())
			}
		}
		fmt.Fprintf(fh, "goroutines %d\n", runtime.NumGoroutine())
		return nil
	})
	write("heap", "pb.gz", func(fh *os.File) error { return pprof.Lookup("heap").WriteTo(fh, 0) })
	write("goroutines", "txt", func(fh *os.File) error { return pprof.Lookup("goroutine").WriteTo(fh, 2) })
}

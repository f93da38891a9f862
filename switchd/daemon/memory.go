package daemon

import (
	"runtime/debug"

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
//
// GOGC and the memory limit stay at Go's defaults: once the start-up
// garbage is gone the heap goal follows the live heap, and a limit sized
// for an idle host would make a leaf with a full table collect constantly.
func releaseStartupMemory() {
	config.ReleaseSchema()
	debug.FreeOSMemory()
}

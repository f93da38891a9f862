package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionText: the module version, commit (+dirty), commit time and
// Go release from the build info, and a plain answer without any.
func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/switchd/switchd", Version: "v0.3.1"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd4567890"}, {Key: "vcs.time", Value: "2026-11-30T07:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionText(bi, true), "switchd v0.3.1 commit 0123abcd4567+dirty (2026-11-30T07:00:00Z) go1.26.0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bi.Main.Version = "v0.0.0-20261130074920-90a1b425c799+dirty"
	if got, want := versionText(bi, true), "switchd v0.0.0-20261130074920-90a1b425c799+dirty commit 0123abcd4567 (2026-11-30T07:00:00Z) go1.26.0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bi = &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}
	if got, want := versionText(bi, true), "switchd (devel) go1.26.0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := versionText(nil, false); !strings.Contains(got, "unknown") {
		t.Errorf("no build info: %q", got)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, _ := switchd(t, 0, args...)
		if !strings.HasPrefix(out, "switchd ") || !strings.Contains(out, " go1.") {
			t.Errorf("switchd %s: %q", args[0], out)
		}
	}
	switchd(t, 2, "version", "extra")
}

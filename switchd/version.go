package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// versionText is switchd's version from the build info: the module
// version ("(devel)" for a build from a checkout), the commit and its
// time when go build stamped them (vcs.revision, vcs.time; "+dirty"
// for a modified tree; GOFLAGS=-buildvcs=false leaves them out), and the
// Go version.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "switchd (unknown version: no build info)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "switchd %s", v)
	if rev != "" {
		fmt.Fprintf(&b, " commit %.12s", rev)
		if dirty && !strings.HasSuffix(v, "+dirty") { // a pseudo-version says so already
			b.WriteString("+dirty")
		}
	}
	if at != "" {
		fmt.Fprintf(&b, " (%s)", at)
	}
	if bi.GoVersion != "" {
		fmt.Fprintf(&b, " %s", bi.GoVersion)
	}
	return b.String()
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(stdout, "usage: switchd version (or switchd --version): the version, commit and Go release of this binary")
			return 0
		}
		fmt.Fprintf(stderr, "switchd version: unexpected arguments %q\n", args)
		return 2
	}
	fmt.Fprintln(stdout, versionText(debug.ReadBuildInfo()))
	return 0
}

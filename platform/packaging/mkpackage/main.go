// Command mkpackage builds the Debian package and the ONIE installer image
// of switchd (make package).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/switchd/switchd/platform/packaging"
)

func main() {
	var o packaging.Options
	flag.StringVar(&o.Binary, "binary", "bin/switchd", "the switchd executable")
	flag.StringVar(&o.Config, "config", "examples/leaf.json", "example config to ship as "+packaging.ConfigPath)
	flag.StringVar(&o.Version, "version", "", "Debian package version (starts with a digit)")
	flag.StringVar(&o.Arch, "arch", "", "GOARCH of the binary (default: this machine's)")
	flag.StringVar(&o.OutDir, "out", "dist", "output directory")
	flag.Parse()
	for _, build := range []func(packaging.Options) (string, error){packaging.Deb, packaging.ONIE} {
		p, err := build(o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkpackage:", err)
			os.Exit(1)
		}
		fmt.Println(p)
	}
}

// Plain TCP sockets: Go makes listeners MPTCP by default, and MPTCP refuses
// the TCP-MD5 keys BGP sessions with a password need.
//
//go:debug multipathtcp=0

// Command switchd is the routing service of a pure-L3 fabric: an embedded
// BGP speaker whose routes it programs into the kernel FIB.
//
//	switchd run   --config FILE    the daemon
//	switchd check --config FILE    validate a config and print every error
//	switchd sim   up|down|status|exec|matrix   a whole fabric in namespaces
//	switchd cni                    the CNI plugin (also as /opt/cni/bin/switchd)
//	switchd show|get|set           the daemon's state and config over gNMI
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/switchd/switchd/host/cni"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon"
)

const usage = `usage: switchd <command> [flags]

commands:
  run    --config FILE   run the daemon (SIGHUP reloads FILE)
  check  --config FILE   validate FILE; print each error with its OpenConfig path
  sim    up|down|status|exec|matrix   a simulated fabric in network namespaces
  cni                    the CNI plugin (CNI_* environment, network config on stdin)
  show   interfaces|bgp|route|endpoints|acl|system   the daemon's state (switchd show -h)
  get    PATH...         the daemon's tree at PATH as JSON_IETF
  set    --update|--replace|--delete PATH [VALUE]   change the config over gNMI
  version                this binary's version (also --version)
`

func main() {
	// A CNI runtime runs the plugin by its type name with no arguments and
	// the request in CNI_* variables: installed as /opt/cni/bin/switchd (or
	// any other name), the binary answers as the plugin.
	if os.Getenv("CNI_COMMAND") != "" && len(os.Args) == 1 {
		os.Exit(cni.Main())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "sim":
		return sim.Main(args[1:], stdout, stderr)
	case "cni":
		return cni.Main()
	case "show":
		return cmdShow(args[1:], stdout, stderr)
	case "get":
		return cmdGet(args[1:], stdout, stderr)
	case "set":
		return cmdSet(args[1:], stdout, stderr)
	case "version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "switchd: unknown command %q\n%s", args[0], usage)
	return 2
}

// parseFlags parses a subcommand's flags. -h and --help (which make flag
// print the usage) are no error: exit 0, not flag's 2.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0, false
	} else if err != nil {
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchd run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "/etc/switchd/switchd.json", "config file: OpenConfig tree as RFC 7951 JSON or YAML")
	socket := fs.String("socket", "/run/switchd/switchd.sock", "unix socket of the local API")
	stateDir := fs.String("state-dir", "/var/lib/switchd", "directory for persistent state")
	gnmiSocket := fs.String("gnmi-socket", gnmiSocketDefault(), "local gNMI socket, root only, no TLS (env SWITCHD_GNMI_SOCKET); \"\": none")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	dockerSocket := fs.String("docker-socket", "", "serve Docker's network and IPAM driver \"switchd\" on this socket (dockerd looks in /run/docker/plugins/switchd.sock); \"\": none")
	platformRoot := fs.String("platform-root", "/", "where platform detection reads the machine (machine.conf, /sys, /proc); a fake tree for tests")
	smallGOGC := fs.Int("small-heap-gogc", 50, "GC percent while the live heap is under 32 MiB (idle hosts, sim nodes); above, Go's default 100; 0: the default throughout (a GOGC in the environment wins)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "switchd run: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	err := daemon.Run(context.Background(), daemon.Options{
		ConfigPath:    *cfg,
		Socket:        *socket,
		StateDir:      *stateDir,
		Logger:        log,
		GNMISocket:    *gnmiSocket,
		PlatformRoot:  *platformRoot,
		DockerSocket:  *dockerSocket,
		SmallHeapGOGC: *smallGOGC,
	})
	if err != nil {
		printConfigErrors(stderr, "switchd run", *cfg, err)
		return 1
	}
	return 0
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchd check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file to validate")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cfg == "" {
		fmt.Fprintln(stderr, "switchd check: --config FILE is required")
		return 2
	}
	in, err := config.Load(*cfg)
	if err != nil {
		printConfigErrors(stderr, "switchd check", *cfg, err)
		return 1
	}
	for _, w := range config.GroupWarnings(in) {
		fmt.Fprintf(stderr, "switchd check: %s: warning: %s\n", *cfg, w)
	}
	fmt.Fprintf(stdout, "%s: valid\n", *cfg)
	return 0
}

// printConfigErrors prints one line per config error, each with its
// OpenConfig path, so a long list stays readable.
func printConfigErrors(w io.Writer, cmd, file string, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "%s: %s: %d error(s):\n", cmd, file, len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e.Error())
		}
		return
	}
	fmt.Fprintf(w, "%s: %s\n", cmd, strings.TrimSpace(err.Error()))
}

// Command switchdprof is `switchd run` under a CPU profile, for the
// BGP-to-FIB benchmark: the same daemon.Run, with the profile written when
// SIGTERM or SIGINT ends the daemon. (switchd itself has no profiling
// flag.)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/switchd/switchd/switchd/daemon"
)

func main() {
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	cfg := flag.String("config", "", "switchd config file")
	socket := flag.String("socket", "", "unix socket of the local API")
	stateDir := flag.String("state-dir", "", "directory for persistent state")
	level := flag.String("log-level", "warn", "log level")
	flag.Parse()
	if err := run(*cpuprofile, *cfg, *socket, *stateDir, *level); err != nil {
		fmt.Fprintln(os.Stderr, "switchdprof:", err)
		os.Exit(1)
	}
}

func run(cpuprofile, cfg, socket, stateDir, level string) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	// daemon.Run returns on SIGTERM/SIGINT, so the deferred stop runs.
	return daemon.Run(context.Background(), daemon.Options{
		ConfigPath: cfg,
		Socket:     socket,
		StateDir:   stateDir,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})),
	})
}

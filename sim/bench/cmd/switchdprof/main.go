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
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/switchd/switchd/switchd/daemon"
)

func main() {
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	memprofile := flag.String("memprofile", "", "write a heap profile here on SIGUSR1")
	cfg := flag.String("config", "", "switchd config file")
	socket := flag.String("socket", "", "unix socket of the local API")
	stateDir := flag.String("state-dir", "", "directory for persistent state")
	level := flag.String("log-level", "warn", "log level")
	flag.Parse()
	if *memprofile != "" {
		// On request, while the daemon still holds its routes (at exit
		// it has let go of them).
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				runtime.GC()
				f, err := os.Create(*memprofile + ".tmp")
				if err == nil {
					err = pprof.WriteHeapProfile(f)
					f.Close()
				}
				if err == nil {
					err = os.Rename(*memprofile+".tmp", *memprofile)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "switchdprof: heap profile:", err)
				}
			}
		}()
	}
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

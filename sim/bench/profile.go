package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/pprof/profile"

	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// cpuProfiler records a running switchd's CPU profile through its public
// face, the pprof handlers on its local API socket, in one-second slices
// from when the socket answers until finish, and merges them: the handler
// profiles for a fixed time, and how long a run takes is what is measured.
type cpuProfiler struct {
	socket string
	stop   chan struct{}
	done   chan struct{}
	// Written by run, read after done.
	slices []*profile.Profile
	err    error
}

// socketWait bounds how long the profiler waits for the daemon's socket.
const socketWait = 30 * time.Second

func startCPUProfiler(socket string) *cpuProfiler {
	p := &cpuProfiler{socket: socket, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *cpuProfiler) run() {
	defer close(p.done)
	deadline := time.Now().Add(socketWait)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		b, err := apiclient.CPUProfile(context.Background(), p.socket, time.Second)
		if err != nil {
			if len(p.slices) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // not serving yet
				continue
			}
			p.err = err
			return
		}
		prof, err := profile.ParseData(b)
		if err != nil {
			p.err = fmt.Errorf("parse cpu profile from %s: %w", p.socket, err)
			return
		}
		p.slices = append(p.slices, prof)
	}
}

// finish ends the recording after the slice under way (up to a second)
// and writes the merged profile to path.
func (p *cpuProfiler) finish(path string) error {
	close(p.stop)
	<-p.done
	if len(p.slices) == 0 {
		return fmt.Errorf("cpu profile of switchd on %s: no slice recorded: %v", p.socket, p.err)
	}
	merged, err := profile.Merge(p.slices)
	if err != nil {
		return fmt.Errorf("merge cpu profile slices of switchd on %s: %w", p.socket, err)
	}
	var buf bytes.Buffer
	if err := merged.Write(&buf); err != nil {
		return fmt.Errorf("write cpu profile %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write cpu profile: %w", err)
	}
	return p.err // a slice that failed after others: the profile is short
}

// heapProfile writes the heap profile of the switchd on socket to path.
func heapProfile(socket, path string) error {
	b, err := apiclient.HeapProfile(context.Background(), socket)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write heap profile: %w", err)
	}
	return nil
}

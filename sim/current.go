package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchd/switchd/sim/ns"
)

// CurrentFile, in RunRoot, holds the run dir of the fabric the CLI works on.
func CurrentFile() string { return filepath.Join(RunRoot, "current") }

// ErrNoFabric says that no fabric is up.
var ErrNoFabric = errors.New("no fabric is up (run switchd sim up)")

// CurrentRunDir returns the run dir named by CurrentFile if that fabric is
// still described there, else "" (a stale CurrentFile is not an error).
func CurrentRunDir() (string, error) {
	b, err := os.ReadFile(CurrentFile())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", CurrentFile(), err)
	}
	dir := strings.TrimSpace(string(b))
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		return "", nil
	}
	return dir, nil
}

// LoadCurrent loads the fabric the CLI works on.
func LoadCurrent() (*Fabric, error) {
	dir, err := CurrentRunDir()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, ErrNoFabric
	}
	return Load(dir)
}

// SetCurrent makes f the fabric the CLI works on.
func SetCurrent(f *Fabric) error {
	if err := os.MkdirAll(RunRoot, 0o755); err != nil {
		return fmt.Errorf("set current fabric: %w", err)
	}
	if err := os.WriteFile(CurrentFile(), []byte(f.RunDir+"\n"), 0o644); err != nil {
		return fmt.Errorf("set current fabric: %w", err)
	}
	return nil
}

// Cleanup tears down every fabric whose run dir is under root: the current
// one and leftovers of crashed runs alike. Namespaces count as a run's when
// their name starts with its prefix (the run dir's name, or the prefix its
// fabric.json records). It returns the prefixes it removed.
func Cleanup(ctx context.Context, root string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup %s: %w", root, err)
	}
	var done []string
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		f, err := Load(dir)
		if err != nil {
			if !strings.HasPrefix(e.Name(), ns.BasePrefix) {
				log.Warn("not a fabric run dir; leaving it", "dir", dir, "err", err)
				continue
			}
			f = bare(e.Name(), dir, log)
		}
		f.log = log
		if err := f.Down(ctx); err != nil {
			errs = append(errs, err)
		}
		done = append(done, f.Prefix)
	}
	if dir, _ := CurrentRunDir(); dir == "" && root == RunRoot {
		os.Remove(CurrentFile())
	}
	return done, errors.Join(errs...)
}

// bare is a fabric known only by prefix and run dir (its fabric.json is
// missing or unreadable); Down still finds its namespaces by prefix.
func bare(prefix, runDir string, log *slog.Logger) *Fabric {
	return &Fabric{
		Topology: &Topology{}, Prefix: prefix, RunDir: runDir, log: log,
		byName: map[string]*NodeInfo{}, nss: map[string]*ns.NS{}, procs: map[string]*process{},
	}
}

package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// store keeps allocation records in a state directory:
//
//	lock                  flock held by the one Manager using the directory
//	blocks.json           the blocks this host claimed
//	endpoints/<id>.json   one record per endpoint: its addresses are its
//	                      allocation (the IPAM handle is the endpoint ID)
//
// Every write is temp file, fsync, rename, fsync directory (for endpoint
// records the fsyncs overlap the kernel work, see recordEndpoint), so a
// crash leaves either the old or the new file. Plain files rather than bbolt:
// records are independent, so one file per endpoint needs no shared
// transaction, stays readable with cat during an incident, and costs the
// same two fsyncs per change that a bbolt commit does.
type store struct {
	dir  string
	epd  string
	lock *os.File
}

const storeVersion = 1

type blocksFile struct {
	Version int            `json:"version"`
	Blocks  []netip.Prefix `json:"blocks"`
}

type endpointFile struct {
	Version  int `json:"version"`
	Endpoint `json:"endpoint"`
}

func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, fmt.Errorf("state directory: %w: not set", ErrInvalidRequest)
	}
	s := &store{dir: dir, epd: filepath.Join(dir, "endpoints")}
	if err := os.MkdirAll(s.epd, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state lock: %w", err)
	}
	// Two managers on one directory would hand out the same addresses.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state directory %s (another switchd using it?): %w", dir, err)
	}
	s.lock = f
	return s, nil
}

func (s *store) close() {
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}

// writeFile replaces dir/name atomically and durably.
func writeFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *store) loadBlocks() ([]netip.Prefix, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "blocks.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read blocks: %w", err)
	}
	var f blocksFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(s.dir, "blocks.json"), err)
	}
	return f.Blocks, nil
}

func (s *store) saveBlocks(blocks []netip.Prefix) error {
	b, _ := json.MarshalIndent(blocksFile{Version: storeVersion, Blocks: slices.Clone(blocks)}, "", "  ")
	if err := writeFile(s.dir, "blocks.json", b); err != nil {
		return fmt.Errorf("save blocks: %w", err)
	}
	return nil
}

func (s *store) epFile(id string) string { return url.PathEscape(id) + ".json" }

// loadEndpoints reads every record and removes temp files a crash left.
func (s *store) loadEndpoints() ([]Endpoint, error) {
	ents, err := os.ReadDir(s.epd)
	if err != nil {
		return nil, fmt.Errorf("read endpoint records: %w", err)
	}
	var eps []Endpoint
	var errs []error
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(s.epd, name)
		if strings.Contains(name, ".tmp") {
			os.Remove(p) // never renamed: the write did not happen
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read endpoint record %s: %w", p, err))
			continue
		}
		if len(b) == 0 {
			os.Remove(p) // power lost before the data reached disk (see recordEndpoint)
			continue
		}
		var f endpointFile
		if err := json.Unmarshal(b, &f); err != nil {
			errs = append(errs, fmt.Errorf("parse endpoint record %s: %w", p, err))
			continue
		}
		if s.epFile(f.ID) != name {
			errs = append(errs, fmt.Errorf("endpoint record %s: holds ID %q", p, f.ID))
			continue
		}
		eps = append(eps, f.Endpoint)
	}
	return eps, errors.Join(errs...)
}

func (s *store) saveEndpoint(ep Endpoint) error {
	sync, err := s.recordEndpoint(ep)
	if err == nil {
		err = sync()
	}
	return err
}

// recordEndpoint writes ep's record and renames it into place without
// waiting for the disk, and returns the function that makes it durable
// (fsync file, fsync directory). Against a crash of the process the rename
// is enough: the page cache outlives it, so the record is in place before
// any interface carries the address. Durability against power loss is what
// the returned function adds; the Manager runs it alongside the kernel
// work and waits for it before reporting success. If power fails first,
// the record may come back empty (the rename reached the journal before
// the data): loadEndpoints treats an empty record as an Add that never
// completed — the workload's netns did not survive the reboot either.
func (s *store) recordEndpoint(ep Endpoint) (sync func() error, err error) {
	b, _ := json.MarshalIndent(endpointFile{Version: storeVersion, Endpoint: ep}, "", "  ")
	name := filepath.Join(s.epd, s.epFile(ep.ID))
	f, err := os.CreateTemp(s.epd, s.epFile(ep.ID)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("save endpoint record %s: %w", ep.ID, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("save endpoint record %s: %w", ep.ID, err)
	}
	return func() error {
		f, err := os.Open(name)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err == nil {
			err = syncDir(s.epd)
		}
		if err != nil {
			return fmt.Errorf("sync endpoint record %s: %w", ep.ID, err)
		}
		return nil
	}, nil
}

func (s *store) deleteEndpoint(id string) error {
	err := os.Remove(filepath.Join(s.epd, s.epFile(id)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(s.epd)
	}
	if err != nil {
		return fmt.Errorf("delete endpoint record %s: %w", id, err)
	}
	return nil
}

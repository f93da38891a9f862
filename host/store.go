package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// store keeps allocation records in a state directory:
//
//	lock            flock held by the one Manager using the directory
//	blocks.json     the blocks this host claimed (temp file, fsync, rename)
//	endpoints.log   one JSON line per change: {"v":1,"put":{endpoint}} or
//	                {"v":1,"del":"<id>"}; the last put of an ID without a
//	                later del is its record, and its addresses are its
//	                allocation (the IPAM handle is the endpoint ID)
//
// An append-only log rather than a file per endpoint: creating a file
// costs an inode allocation, which on ext4 took 0.25-1.3 ms of kernel CPU
// per endpoint here (more than the veth), while an append reuses the
// log's blocks. Appends are made durable by group commit: concurrent Adds
// and Dels share one fdatasync. The log is rewritten compactly (temp file,
// fsync, rename) when it is loaded and when dead lines outnumber live
// ones. Every line is one write(2) ending in a newline, so a crash leaves at
// most a torn last line, which load drops: it belongs to an Add or Del that
// never reported success. Records of the former format
// (endpoints/<id>.json) are read once and folded into the log.
type store struct {
	dir  string
	lock *os.File

	mu      sync.Mutex // guards the fields below
	cond    *sync.Cond // signalled when a sync finishes
	log     *os.File   // endpoints.log, O_APPEND
	size    int64      // bytes of whole lines in the log
	live    map[string][]byte
	lines   int    // lines in the log
	written uint64 // appends so far
	synced  uint64 // appends known durable
	syncing bool   // a sync is under way
	syncErr error  // sticky: after a failed fsync nothing is known durable
}

const storeVersion = 1

type blocksFile struct {
	Version int            `json:"version"`
	Blocks  []netip.Prefix `json:"blocks"`
}

const logName = "endpoints.log"

func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, fmt.Errorf("state directory: %w: not set", ErrInvalidRequest)
	}
	s := &store{dir: dir, live: map[string][]byte{}}
	s.cond = sync.NewCond(&s.mu)
	if err := os.MkdirAll(dir, 0o700); err != nil {
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
	s.mu.Lock()
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
	s.mu.Unlock()
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

type logLine struct {
	Version int       `json:"v"`
	Put     *Endpoint `json:"put,omitempty"`
	Del     string    `json:"del,omitempty"`
}

// loadEndpoints reads the records (log, then any of the former per-file
// format), rewrites the log compactly and opens it for appending.
func (s *store) loadEndpoints() ([]Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := map[string][]byte{}
	var errs []error
	legacy, err := s.loadLegacyLocked(live)
	if err != nil {
		errs = append(errs, err)
	}
	p := filepath.Join(s.dir, logName)
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read endpoint records: %w", err)
	}
	for n := 1; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // torn last line: its Add or Del never completed
		}
		line := b[:i]
		b = b[i+1:]
		if len(bytes.Trim(line, "\x00")) == 0 {
			continue // zeros from a power loss before the data reached disk
		}
		var l logLine
		if err := json.Unmarshal(line, &l); err != nil || (l.Put == nil) == (l.Del == "") {
			errs = append(errs, fmt.Errorf("endpoint record %s line %d: not a put or del (%v): %.100q", p, n, err, line))
			continue
		}
		if l.Put != nil {
			live[l.Put.ID] = append([]byte(nil), line...)
		} else {
			delete(live, l.Del)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := s.compactLocked(live); err != nil {
		return nil, err
	}
	for _, name := range legacy {
		os.Remove(name)
	}
	var eps []Endpoint
	for _, line := range live {
		var l logLine
		json.Unmarshal(line, &l)
		eps = append(eps, *l.Put)
	}
	return eps, nil
}

// loadLegacyLocked reads the records of the former format, one file per
// endpoint under endpoints/, and returns their paths.
func (s *store) loadLegacyLocked(live map[string][]byte) ([]string, error) {
	epd := filepath.Join(s.dir, "endpoints")
	ents, err := os.ReadDir(epd)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read endpoint records: %w", err)
	}
	var done []string
	var errs []error
	for _, e := range ents {
		p := filepath.Join(epd, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read endpoint record %s: %w", p, err))
			continue
		}
		done = append(done, p)
		if strings.Contains(e.Name(), ".tmp") || len(b) == 0 {
			continue // never renamed, or empty after a power loss: never completed
		}
		var f struct {
			Endpoint Endpoint `json:"endpoint"`
		}
		if err := json.Unmarshal(b, &f); err != nil || f.Endpoint.ID == "" {
			errs = append(errs, fmt.Errorf("parse endpoint record %s: %v", p, err))
			continue
		}
		line, _ := json.Marshal(logLine{Version: storeVersion, Put: &f.Endpoint})
		live[f.Endpoint.ID] = line
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return append(done, epd), nil
}

// compactLocked replaces the log by the live records (temp file, fsync,
// rename, fsync directory) and opens it for appending.
func (s *store) compactLocked(live map[string][]byte) error {
	for s.syncing {
		s.cond.Wait() // its file is about to be replaced
	}
	var buf bytes.Buffer
	ids := slices.Sorted(maps.Keys(live))
	for _, id := range ids {
		buf.Write(live[id])
		buf.WriteByte('\n')
	}
	if err := writeFile(s.dir, logName, buf.Bytes()); err != nil {
		return fmt.Errorf("rewrite endpoint records: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, logName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open endpoint records: %w", err)
	}
	if s.log != nil {
		s.log.Close()
	}
	s.log, s.size, s.live, s.lines = f, int64(buf.Len()), live, len(live)
	// Everything written before is in the new, synced file.
	s.synced = s.written
	return nil
}

// appendLocked writes one line. A short write is cut off again so the next
// line starts clean.
func (s *store) appendLocked(l logLine) error {
	if s.log == nil {
		return fmt.Errorf("endpoint records not loaded")
	}
	line, _ := json.Marshal(l)
	line = append(line, '\n')
	if _, err := s.log.Write(line); err != nil {
		if terr := s.log.Truncate(s.size); terr != nil {
			s.syncErr = fmt.Errorf("endpoint records damaged: %w", terr)
		}
		return err
	}
	s.size += int64(len(line))
	s.lines++
	s.written++
	if l.Put != nil {
		s.live[l.Put.ID] = line[:len(line)-1]
	} else {
		delete(s.live, l.Del)
	}
	return nil
}

// syncTo returns once append number seq is durable. One caller at a time
// runs fdatasync; the others wait for it and are covered by it if their
// append came first (group commit).
func (s *store) syncTo(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.synced < seq && s.syncErr == nil {
		if s.syncing {
			s.cond.Wait()
			continue
		}
		s.syncing = true
		target, f := s.written, s.log
		s.mu.Unlock()
		err := unix.Fdatasync(int(f.Fd()))
		s.mu.Lock()
		s.syncing = false
		if err != nil {
			s.syncErr = fmt.Errorf("sync endpoint records: %w", err)
		} else if target > s.synced {
			s.synced = target
		}
		s.cond.Broadcast()
	}
	return s.syncErr
}

func (s *store) saveEndpoint(ep Endpoint) error {
	sync, err := s.recordEndpoint(ep)
	if err == nil {
		err = sync()
	}
	return err
}

// recordEndpoint appends ep's record without waiting for the disk, and
// returns the function that makes it durable. Against a crash of the
// process the append is enough: the page cache outlives it, so the record
// is in place before any interface carries the address. Durability
// against power loss is what the returned function adds; the Manager runs
// it alongside the kernel work and waits for it before reporting success.
// If power fails first, the line may be lost or torn: load drops it as an
// Add that never completed (the workload's netns did not survive the
// reboot either).
func (s *store) recordEndpoint(ep Endpoint) (sync func() error, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncErr != nil {
		return nil, fmt.Errorf("save endpoint record %s: %w", ep.ID, s.syncErr)
	}
	if err := s.appendLocked(logLine{Version: storeVersion, Put: &ep}); err != nil {
		return nil, fmt.Errorf("save endpoint record %s: %w", ep.ID, err)
	}
	seq := s.written
	return func() error {
		if err := s.syncTo(seq); err != nil {
			return fmt.Errorf("sync endpoint record %s: %w", ep.ID, err)
		}
		return nil
	}, nil
}

// deleteEndpoint durably removes id's record; an unknown id is done.
func (s *store) deleteEndpoint(id string) error {
	s.mu.Lock()
	if _, ok := s.live[id]; !ok {
		s.mu.Unlock()
		return nil
	}
	err := s.syncErr
	if err == nil {
		err = s.appendLocked(logLine{Version: storeVersion, Del: id})
	}
	seq := s.written
	if err == nil && s.lines > 2*len(s.live)+1024 {
		// Compacting makes the delete durable too (the new log is synced).
		err = s.compactLocked(s.live)
	}
	s.mu.Unlock()
	if err == nil {
		err = s.syncTo(seq)
	}
	if err != nil {
		return fmt.Errorf("delete endpoint record %s: %w", id, err)
	}
	return nil
}

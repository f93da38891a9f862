package host

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func openLoaded(t *testing.T, dir string) (*store, []Endpoint) {
	t.Helper()
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := s.loadEndpoints()
	if err != nil {
		s.close()
		t.Fatal(err)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return s, eps
}

func ids(eps []Endpoint) string {
	var s []string
	for _, e := range eps {
		s = append(s, e.ID)
	}
	return strings.Join(s, ",")
}

// TestStoreLog: concurrent records share syncs and all survive a reopen,
// deletes stick, a torn last line is dropped, a damaged middle line stops
// the load, and many deletes compact the log.
func TestStoreLog(t *testing.T) {
	dir := t.TempDir()
	s, eps := openLoaded(t, dir)
	if len(eps) != 0 {
		t.Fatalf("fresh store has %v", eps)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			ep := Endpoint{ID: fmt.Sprintf("c%d/eth0", i), Kind: KindContainer, IPv4: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}
			sync, err := s.recordEndpoint(ep)
			if err == nil {
				err = sync()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s.synced != s.written || s.written != 8 {
		t.Errorf("synced %d of %d appends", s.synced, s.written)
	}
	if err := s.deleteEndpoint("c3/eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.deleteEndpoint("unknown"); err != nil {
		t.Fatal(err)
	}
	s.close()

	// A torn last line (a crash mid-append) is dropped.
	log := filepath.Join(dir, logName)
	f, _ := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"v":1,"put":{"id":"torn/eth0","ipv4":"10.0.0`)
	f.Close()
	s, eps = openLoaded(t, dir)
	if got := ids(eps); got != "c0/eth0,c1/eth0,c2/eth0,c4/eth0,c5/eth0,c6/eth0,c7/eth0" {
		t.Errorf("after reopen: %s", got)
	}
	if eps[0].IPv4 != netip.MustParseAddr("10.0.0.0") {
		t.Errorf("record lost its address: %+v", eps[0])
	}

	// Many deletes compact the log.
	for i := range 1100 {
		ep := Endpoint{ID: fmt.Sprintf("x%d/eth0", i), Kind: KindContainer}
		if err := s.saveEndpoint(ep); err != nil {
			t.Fatal(err)
		}
		if err := s.deleteEndpoint(ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	if s.lines > 2*len(s.live)+1024 {
		t.Errorf("log has %d lines for %d records: not compacted", s.lines, len(s.live))
	}
	s.close()
	s, eps = openLoaded(t, dir)
	if len(eps) != 7 {
		t.Errorf("after compaction: %s", ids(eps))
	}
	s.close()

	// A damaged line in the middle may hide an allocation: refuse.
	b, _ := os.ReadFile(log)
	os.WriteFile(log, append([]byte("garbage\n"), b...), 0o600)
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, err := s.loadEndpoints(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("load of a damaged log: %v, want an error naming line 1", err)
	}
}

// TestStoreLegacyRecords: records of the file-per-endpoint format are
// folded into the log and their files removed.
func TestStoreLegacyRecords(t *testing.T) {
	dir := t.TempDir()
	epd := filepath.Join(dir, "endpoints")
	os.MkdirAll(epd, 0o700)
	os.WriteFile(filepath.Join(epd, "c1%2Feth0.json"), []byte(`{"version":1,"endpoint":{"id":"c1/eth0","kind":"container","ipv4":"10.1.0.1"}}`), 0o600)
	os.WriteFile(filepath.Join(epd, "c2%2Feth0.json.tmp123"), []byte(`{"version":1,"endpoint":{"id":"c2/eth0"}}`), 0o600)
	os.WriteFile(filepath.Join(epd, "c3%2Feth0.json"), nil, 0o600)
	s, eps := openLoaded(t, dir)
	s.close()
	if ids(eps) != "c1/eth0" || eps[0].IPv4 != netip.MustParseAddr("10.1.0.1") {
		t.Errorf("legacy records loaded as %+v, want c1 with 10.1.0.1", eps)
	}
	if _, err := os.Stat(epd); !os.IsNotExist(err) {
		t.Errorf("legacy directory left: %v", err)
	}
	s, eps = openLoaded(t, dir)
	s.close()
	if ids(eps) != "c1/eth0" {
		t.Errorf("after reopen: %+v", eps)
	}
}

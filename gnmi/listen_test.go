package gnmi

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// TestSelfSignedReused: without configured files, the first start makes
// a certificate and a key only root can read in the state dir; the next
// start serves the same certificate (same fingerprint), so clients that
// pinned it keep working.
func TestSelfSignedReused(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	lo := ListenOptions{Addresses: []string{"127.0.0.1:0"}, TLS: TLSOptions{StateDir: state}}
	var fps []string
	for range 2 {
		l, err := s.Listen(lo)
		if err != nil {
			t.Fatal(err)
		}
		fps = append(fps, l.Fingerprint)
		l.Close()
	}
	if fps[0] == "" || fps[0] != fps[1] {
		t.Errorf("fingerprints %q, want the same certificate twice", fps)
	}
	fi, err := os.Stat(filepath.Join(state, SelfSignedKey))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
}

// TestLocalSocketMode: the local socket is mode 0600 (only root
// connects), and a second server on the same path is refused while the
// first serves.
func TestLocalSocketMode(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "run", "gnmi.sock")
	l, err := s.Listen(ListenOptions{LocalSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, mode %v; want a socket with mode 0600", err, fi.Mode())
	}
	if l2, err := s.Listen(ListenOptions{LocalSocket: sock}); err == nil {
		l2.Close()
		t.Error("a second listener took over a socket in use")
	}
}

// TestOnChangeHeartbeatAndUpdatesOnly: an ON_CHANGE heartbeat resends an
// unchanged leaf; updates_only sends sync first and only changes after.
func TestOnChangeHeartbeatAndUpdatesOnly(t *testing.T) {
	s, c := newTestServer(t, Options{})
	publish(t, s, 1, eth0Oper, str("UP"))
	hb := startSubscriber(t, c, streamRequest(&gpb.Subscription{Path: mustPath(t, eth0Oper), Mode: gpb.SubscriptionMode_ON_CHANGE,
		HeartbeatInterval: uint64(100 * time.Millisecond)}))
	hb.waitFor("three UPs", func(seen []event, _ error) bool { return count(seen, event{path: eth0Oper, val: "UP"}) >= 3 })

	req := streamRequest(&gpb.Subscription{Path: mustPath(t, eth0Oper), Mode: gpb.SubscriptionMode_ON_CHANGE})
	req.GetSubscribe().UpdatesOnly = true
	uo := startSubscriber(t, c, req)
	uo.waitFor("sync", func(seen []event, _ error) bool { return count(seen, event{sync: true}) == 1 })
	publish(t, s, 2, eth0Oper, str("DOWN"))
	seen := uo.waitFor("DOWN", func(seen []event, _ error) bool { return count(seen, event{path: eth0Oper, val: "DOWN"}) == 1 })
	if want := []event{{sync: true}, {path: eth0Oper, val: "DOWN"}}; len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("updates_only: %v, want %v", seen, want)
	}
}

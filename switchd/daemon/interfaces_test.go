package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchd/switchd/platform"
)

// testIfaces is a fake interface reconciler: it records calls, reports
// the interfaces it is told are missing and fails Apply while failing is
// set (then wants a retry 10 ms later).
type testIfaces struct {
	rec  *recorder
	kick chan struct{}

	mu      sync.Mutex // guards the fields below (the test sets them)
	desired map[string]platform.InterfaceConfig
	absent  map[string]bool
	failing bool
	retryAt time.Time
}

func newTestIfaces(rec *recorder) *testIfaces {
	return &testIfaces{rec: rec, kick: make(chan struct{}, 1), desired: map[string]platform.InterfaceConfig{}, absent: map[string]bool{}}
}

func (f *testIfaces) SetInterface(c platform.InterfaceConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.desired[c.Name] = c
	f.rec.add("ifaces.Set %s %v", c.Name, c.Addrs)
}

func (f *testIfaces) DeleteInterface(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.desired, name)
	f.rec.add("ifaces.Delete %s", name)
}

func (f *testIfaces) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.desired {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (f *testIfaces) QueueResync()          { f.rec.add("ifaces.QueueResync") }
func (f *testIfaces) Kick() <-chan struct{} { return f.kick }
func (f *testIfaces) Close()                {}

func (f *testIfaces) Missing() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.desired {
		if f.absent[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (f *testIfaces) Apply(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rec.add("ifaces.Apply")
	if f.failing {
		f.retryAt = time.Now().Add(10 * time.Millisecond)
		return errors.New("interface swp1: set mtu 9000: invalid argument")
	}
	f.retryAt = time.Time{}
	return nil
}

func (f *testIfaces) NextRetry() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.retryAt
}

func (f *testIfaces) set(fn func(f *testIfaces)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

// withInterfaces is cfg's config file with /interfaces entries: name →
// IPv4 address with its prefix length ("" for none).
func withInterfaces(t *testing.T, cfg testConfig, ifs map[string]string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cfg.json(), &m); err != nil {
		t.Fatal(err)
	}
	var list []any
	for name, a := range ifs {
		e := map[string]any{"name": name, "config": map[string]any{"name": name, "mtu": 9000}}
		if a != "" {
			p := pfx(a)
			ip, plen := p.Addr().String(), p.Bits()
			e["subinterfaces"] = map[string]any{"subinterface": []any{map[string]any{"index": 0, "config": map[string]any{"index": 0},
				"openconfig-if-ip:ipv4": map[string]any{"addresses": map[string]any{"address": []any{map[string]any{
					"ip": ip, "config": map[string]any{"ip": ip, "prefix-length": plen}}}}}}}}
		}
		list = append(list, e)
	}
	m["openconfig-interfaces:interfaces"] = map[string]any{"interface": list}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWiringInterfaces: at start the config's interfaces are desired and
// applied before the FIB's first Apply (their addresses are connected
// routes); a reload sets what changed and drops what left, applied in the
// same turn; the reconciler's kick alone brings an Apply; a failed Apply
// is in the status and retried at the time the reconciler names, without
// any other wake-up; a missing interface is in the status.
func TestWiringInterfaces(t *testing.T) {
	var f *testIfaces
	cfg := testConfig{neighbors: []string{"10.0.1.1"}}
	w := newWired(t, cfg, func(w *wired) {
		f = newTestIfaces(w.rec)
		f.absent["swp2"] = true
		w.ifaces = f
		w.writeConfig(t, withInterfaces(t, cfg, map[string]string{"swp1": "10.0.1.0/31", "swp2": ""}))
	})
	calls := w.rec.since(0)
	set, apply, fibApply := index(calls, "ifaces.Set swp1 [10.0.1.0/31]"), index(calls, "ifaces.Apply"), index(calls, "fib.Apply")
	if set < 0 || apply < set || fibApply < apply {
		t.Fatalf("start: calls %q: want ifaces.Set swp1, then ifaces.Apply, before the first fib.Apply", calls)
	}
	if st := w.d.status.load().Interfaces; st == nil || st.Configured != 2 || !slices.Equal(st.Missing, []string{"swp2"}) || st.LastError != "" {
		t.Errorf("status after start: %+v, want 2 configured, swp2 missing, no error", st)
	}
	w.run(t)

	m := w.rec.mark()
	calls = w.reload(t, withInterfaces(t, cfg, map[string]string{"swp1": "10.0.1.2/31"}))
	if s, d, a := index(calls, "ifaces.Set swp1 [10.0.1.2/31]"), index(calls, "ifaces.Delete swp2"), index(calls, "ifaces.Apply"); s < 0 || d < 0 || a < max(s, d) {
		t.Fatalf("reload: calls %q: want swp1 set and swp2 deleted, then an Apply in the turn", calls)
	}

	m = w.rec.mark()
	kick(f.kick)
	w.rec.waitTurnAfter(t, m, "ifaces.Apply")

	// A failure: in the status, and tried again when due with nothing else
	// waking the loop.
	f.set(func(f *testIfaces) { f.failing = true })
	m = w.rec.mark()
	kick(f.kick)
	w.rec.waitFor(t, m, "a failed Apply and its retry", func(c []string) bool { return count(c, "ifaces.Apply") >= 3 })
	if st := w.d.status.load().Interfaces; st == nil || st.LastError == "" {
		t.Errorf("status after a failed Apply: %+v, want its error", st)
	}
	f.set(func(f *testIfaces) { f.failing = false })
	m = w.rec.mark()
	w.rec.waitFor(t, m, "the retry that succeeds", func(c []string) bool {
		st := w.d.status.load().Interfaces
		return count(c, "ifaces.Apply") >= 1 && st != nil && st.LastError == "" && len(st.Missing) == 0
	})
}

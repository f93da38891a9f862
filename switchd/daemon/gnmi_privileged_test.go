package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/policy"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

const (
	gnmiAdminPW  = "admin-secret"
	gnmiViewerPW = "viewer-secret"
)

// gnmicBin finds gnmic where .ci/tools-gnmi installs it, or skips.
func gnmicBin(t *testing.T) string { return clientBinary(t, "gnmic") }

// gnmicClient runs gnmic against the daemon's TCP listener over TLS
// (the self-signed certificate, not verified: the test trusts its own
// daemon), as a configured user.
type gnmicClient struct {
	bin, dir string
	addr     string
}

func (c *gnmicClient) args(user, pw string, args []string) []string {
	return append([]string{"-a", c.addr, "--skip-verify", "-u", user, "-p", pw, "--timeout", "10s",
		"--config", filepath.Join(c.dir, "none.yaml")}, args...)
}

func (c *gnmicClient) run(user, pw string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, c.args(user, pw, args)...).CombinedOutput()
	return string(out), err
}

// gnmicStream is a running gnmic subscription: its output so far, and
// whether it has exited. The test's cleanup ends it by its process.
type gnmicStream struct {
	mu   sync.Mutex // guards the fields below
	out  bytes.Buffer
	done bool
}

func (s *gnmicStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (c *gnmicClient) stream(t *testing.T, user, pw string, args ...string) *gnmicStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &gnmicStream{}
	cmd := exec.CommandContext(ctx, c.bin, c.args(user, pw, args)...)
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return s
}

func (s *gnmicStream) output() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String(), s.done
}

var passwordHashes sync.Map // password -> its bcrypt hash

// passwordHash hashes a password once: a new salt would be a changed
// user, and a reload would restart the listener.
func passwordHash(t *testing.T, pw string) string {
	if h, ok := passwordHashes.Load(pw); ok {
		return h.(string)
	}
	h, err := gnmi.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	passwordHashes.Store(pw, h)
	return h
}

// gnmiConfig is ecmpConfig for one peer with a gNMI listener on port,
// an admin and a read-only user, the state dir (the self-signed
// certificate goes there) and peer-as as the v4 neighbor's.
func gnmiConfig(t *testing.T, peer *frrPeer, dir string, port int, peerAS4 uint32) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(ecmpConfig([]*frrPeer{peer}), &doc); err != nil {
		t.Fatal(err)
	}
	nis := doc["openconfig-network-instance:network-instances"].(map[string]any)["network-instance"].([]any)
	nbrs := nis[0].(map[string]any)["protocols"].(map[string]any)["protocol"].([]any)[0].(map[string]any)["bgp"].(map[string]any)["neighbors"].(map[string]any)["neighbor"].([]any)
	for _, n := range nbrs {
		if n := n.(map[string]any); n["neighbor-address"] == peer.addr4().String() {
			n["config"].(map[string]any)["peer-as"] = peerAS4
		}
	}
	user := func(name, pw, role string) map[string]any {
		return map[string]any{"username": name, "config": map[string]any{"username": name, "password-hashed": passwordHash(t, pw), "role": role}}
	}
	doc["openconfig-system:system"] = map[string]any{
		"grpc-servers": map[string]any{"grpc-server": []any{map[string]any{"name": "gnmi", "config": map[string]any{"name": "gnmi", "port": port}}}},
		"aaa": map[string]any{"authentication": map[string]any{"users": map[string]any{"user": []any{
			user("admin", gnmiAdminPW, "SYSTEM_ROLE_ADMIN"), user("viewer", gnmiViewerPW, "viewer"),
		}}}},
	}
	doc["switchd:switchd"] = map[string]any{"config": map[string]any{"state-dir": dir}}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGNMIPrivileged runs the real daemon with an FRR peer and drives its
// gNMI server with gnmic over TLS: Capabilities; Get of oper-status and of
// the session state; Sets refused (wrong type, unknown path, neighbor
// without peer-as) naming the path and changing nothing (kernel routes,
// sessions, file: byte-identical); a read-only user's Set refused, its
// Subscribe served; a valid Set of peer-as doing to the kernel what the
// same edit of the file and SIGHUP does, and landing in the file, while a
// subscription on the unchanged listener keeps going; a Set of the
// listener's port moving the listener and the failsafe rule; an
// ON_CHANGE subscription seeing the session leave ESTABLISHED when the
// peer's bgpd is killed.
func TestGNMIPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	bin := gnmicBin(t)
	peer := startFRR(t, 5, 65011)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchd.json")
	const port = 50051
	if err := os.WriteFile(cfgPath, gnmiConfig(t, peer, dir, port, 65011), 0o640); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "switchd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfgPath, Socket: sock, StateDir: dir, GNMISocket: filepath.Join(dir, "gnmi.sock"),
			Logger: slog.New(slog.NewTextHandler(testLogOut(), nil)), StateInterval: 200 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c := &gnmicClient{bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	admin := func(args ...string) (string, error) { return c.run("admin", gnmiAdminPW, args...) }

	waitFor(t, "gnmic capabilities listing the models", func() error {
		out, err := admin("capabilities")
		if err != nil || !strings.Contains(out, "openconfig-interfaces") || !strings.Contains(out, "openconfig-network-instance") {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})
	nb4 := nbrPath + "neighbors/neighbor[neighbor-address=" + peer.addr4().String() + "]"
	nb6 := nbrPath + "neighbors/neighbor[neighbor-address=" + peer.addr6().String() + "]"
	for _, nb := range []string{nb4, nb6} {
		waitFor(t, "Get of "+nb+" session-state ESTABLISHED", func() error {
			out, err := admin("get", "-e", "json_ietf", "--path", "/"+nb+"/state/session-state")
			if err != nil || !strings.Contains(out, `"ESTABLISHED"`) {
				return fmt.Errorf("%v:\n%s", err, out)
			}
			return nil
		})
	}
	waitFor(t, "Get of oper-status: tofrr5 UP", func() error {
		out, err := admin("get", "-e", "json_ietf", "--format", "flat", "--path", "/interfaces/interface[name=*]/state/oper-status")
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "[name=tofrr5]/state/oper-status") && strings.HasSuffix(strings.TrimSpace(l), "UP") {
				return nil
			}
		}
		return fmt.Errorf("no tofrr5 UP:\n%s", out)
	})

	// A route from the peer, so that the kernel has something of ours to
	// keep or lose.
	pfx := netip.MustParsePrefix("10.55.0.0/24")
	peer.announce(t, pfx, true)
	waitFor(t, "the peer's route in the kernel", func() error {
		if len(kernelRoutes(pfx.String())) == 0 {
			return fmt.Errorf("no route to %v", pfx)
		}
		return nil
	})

	// Refused Sets change nothing.
	before := gnmiSnapshot(t, cfgPath, sock)
	for _, tc := range []struct {
		name string
		args []string
		path string
	}{
		{"wrong type", []string{"--replace-path", "/" + nb4 + "/config/peer-as", "--replace-value", `"many"`}, nb4 + "/config/peer-as"},
		{"unknown path", []string{"--update-path", "/" + nb4 + "/config/peer-ass", "--update-value", "1"}, nb4 + "/config/peer-ass"},
		{"neighbor without peer-as", []string{"--delete", "/" + nb4 + "/config/peer-as"}, nb4},
	} {
		out, err := admin(append([]string{"set", "-e", "json_ietf"}, tc.args...)...)
		if err == nil || !strings.Contains(out, "InvalidArgument") || !strings.Contains(out, tc.path) {
			t.Errorf("Set %s: %v, want InvalidArgument naming %s:\n%s", tc.name, err, tc.path, out)
		}
	}
	if after := gnmiSnapshot(t, cfgPath, sock); after != before {
		t.Errorf("a refused Set changed something:\nbefore %s\nafter  %s", before, after)
	}

	// A read-only user may not Set, but may Subscribe.
	setAS := func(user, pw string, as uint32) (string, error) {
		return c.run(user, pw, "set", "-e", "json_ietf", "--replace-path", "/"+nb4+"/config/peer-as", "--replace-value", strconv.Itoa(int(as)))
	}
	if out, err := setAS("viewer", gnmiViewerPW, 65012); err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("read-only Set: %v, want PermissionDenied:\n%s", err, out)
	}
	if out, err := c.run("viewer", gnmiViewerPW, "subscribe", "--mode", "once", "--path", "/"+nb4+"/state/session-state"); err != nil || !strings.Contains(out, "ESTABLISHED") {
		t.Errorf("read-only Subscribe ONCE: %v, want ESTABLISHED:\n%s", err, out)
	}
	if after := gnmiSnapshot(t, cfgPath, sock); after != before {
		t.Errorf("a read-only Set changed something:\nbefore %s\nafter  %s", before, after)
	}

	// A subscription on the listener, whose config the Sets and reloads
	// below leave alone: it keeps going through them.
	kept := c.stream(t, "viewer", gnmiViewerPW, "subscribe", "--mode", "stream", "--stream-mode", "on-change", "--path", "/"+nb4+"/state/session-state")
	waitFor(t, "the kept subscription's initial ESTABLISHED", func() error {
		if out, done := kept.output(); !strings.Contains(out, "ESTABLISHED") || done {
			return fmt.Errorf("done %v:\n%s", done, out)
		}
		return nil
	})

	// A valid Set: the wrong AS for the peer, whose session (and route)
	// goes; the file holds it, with its mode.
	if out, err := setAS("admin", gnmiAdminPW, 65012); err != nil {
		t.Fatalf("Set peer-as: %v\n%s", err, out)
	}
	routeGone := func() error {
		if rs := kernelRoutes(pfx.String()); len(rs) != 0 {
			return fmt.Errorf("route to %v still there: %v", pfx, rs)
		}
		return nil
	}
	waitFor(t, "the route gone after the Set", routeGone)
	in, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("the file Set wrote: %v", err)
	}
	if as := peerASOf(in, peer.addr4()); as != 65012 {
		t.Errorf("the file's peer-as %d, want 65012", as)
	}
	if st, err := os.Stat(cfgPath); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("the file's mode %v (%v), want 0640", st.Mode(), err)
	}
	bySet := ownRouteDump(t)
	// The running config is in the gNMI tree too.
	if out, err := admin("get", "-e", "json_ietf", "--type", "config", "--path", "/"+nb4+"/config/peer-as"); err != nil || !strings.Contains(out, "65012") {
		t.Errorf("Get of the config's peer-as: %v, want 65012:\n%s", err, out)
	}

	// The same edit by file and SIGHUP, from the same start.
	reloadWith := func(as uint32) {
		if err := os.WriteFile(cfgPath, gnmiConfig(t, peer, dir, port, as), 0o640); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
	}
	reloadWith(65011)
	waitFor(t, "the route back after SIGHUP", func() error {
		if len(kernelRoutes(pfx.String())) == 0 {
			return fmt.Errorf("no route to %v", pfx)
		}
		return nil
	})
	reloadWith(65012)
	waitFor(t, "the route gone after SIGHUP", routeGone)
	if byHUP := ownRouteDump(t); byHUP != bySet {
		t.Errorf("kernel routes after Set:\n%s\nafter the same edit and SIGHUP:\n%s", bySet, byHUP)
	}
	if out, err := setAS("admin", gnmiAdminPW, 65011); err != nil {
		t.Fatalf("Set peer-as back: %v\n%s", err, out)
	}
	waitFor(t, "the route back after the Set", func() error {
		if len(kernelRoutes(pfx.String())) == 0 {
			return fmt.Errorf("no route to %v", pfx)
		}
		return nil
	})

	// ESTABLISHED, then again after the SIGHUP back to the right AS and
	// after the Set back: the subscription outlived two reloads and two
	// Sets.
	waitFor(t, "the kept subscription seeing the session come back twice", func() error {
		if out, done := kept.output(); strings.Count(out, `"ESTABLISHED"`) < 3 || done {
			return fmt.Errorf("done %v:\n%s", done, out)
		}
		return nil
	})

	// A Set of the listener's port: answered on the old listener, served
	// on the new one, which the failsafe rules keep open.
	if out, err := admin("set", "-e", "json_ietf", "--update-path", "/system/grpc-servers/grpc-server[name=gnmi]/config/port", "--update-value", "50052"); err != nil {
		t.Fatalf("Set port: %v\n%s", err, out)
	}
	c.addr = "127.0.0.1:50052"
	waitFor(t, "capabilities on the new port", func() error {
		out, err := admin("capabilities")
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})
	waitFor(t, "the failsafe rules keeping 50052 open", func() error { return failsafeHas(50052) })

	// ON_CHANGE: the session leaves ESTABLISHED when the peer dies.
	s := c.stream(t, "viewer", gnmiViewerPW, "subscribe", "--mode", "stream", "--stream-mode", "on-change", "--path", "/"+nb4+"/state/session-state")
	waitFor(t, "the subscription's initial ESTABLISHED", func() error {
		if out, done := s.output(); !strings.Contains(out, "ESTABLISHED") || done {
			return fmt.Errorf("done %v:\n%s", done, out)
		}
		return nil
	})
	raw, err := os.ReadFile(peer.path("bgpd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "IDLE or ACTIVE on the subscription", func() error {
		out, _ := s.output()
		if i := strings.Index(out, "ESTABLISHED"); i < 0 || !strings.Contains(out[i:], "IDLE") && !strings.Contains(out[i:], "ACTIVE") {
			return fmt.Errorf("no IDLE or ACTIVE after ESTABLISHED:\n%s", out)
		}
		return nil
	})
}

func peerASOf(in *config.Intent, a netip.Addr) uint32 {
	for _, n := range in.BGP.Neighbors {
		if n.Address == a {
			return n.PeerAS
		}
	}
	return 0
}

// ownRouteDump is switchd's kernel routes, one per line, sorted.
func ownRouteDump(t *testing.T) string {
	t.Helper()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rs {
		lines = append(lines, r.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// gnmiSnapshot is what a refused Set must not change: the config file's
// bytes, switchd's kernel routes and each session's state, established
// transitions and start.
func gnmiSnapshot(t *testing.T, cfgPath, sock string) string {
	t.Helper()
	file, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := apiclient.GetStatus(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "file %q\nroutes\n%s\n", file, ownRouteDump(t))
	for _, n := range st.BGP.Neighbors {
		fmt.Fprintf(&b, "session %s %s %d %v\n", n.Address, n.State, n.EstablishedTransitions, n.EstablishedSince)
	}
	return b.String()
}

// failsafeHas says whether the failsafe rules' TCP set holds port.
func failsafeHas(port uint16) error {
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	defer conn.CloseLasting()
	tbl := &nftables.Table{Name: policy.DefaultName, Family: nftables.TableFamilyINet}
	sets, err := conn.GetSets(tbl)
	if err != nil {
		return err
	}
	for _, s := range sets {
		if s.Name != policy.SetFailsafeTCP {
			continue
		}
		es, err := conn.GetSetElements(s)
		if err != nil {
			return err
		}
		for _, e := range es {
			if bytes.Equal(e.Key, []byte{byte(port >> 8), byte(port)}) {
				return nil
			}
		}
		return fmt.Errorf("%s lacks %d", s.Name, port)
	}
	return fmt.Errorf("no set %s", policy.SetFailsafeTCP)
}

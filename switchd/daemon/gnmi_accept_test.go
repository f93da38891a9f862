package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/sim/ns"
)

// startGNMIDaemon runs the real daemon with an FRR peer (peer n, on veth
// tofrrN) and its gNMI listener on port over TLS with the self-signed
// certificate in the state dir, and waits for both sessions to be
// ESTABLISHED. It returns the peer and the state dir.
func startGNMIDaemon(t *testing.T, n, port int) (*frrPeer, string) {
	t.Helper()
	peer := startFRR(t, n, 65011)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfgPath, gnmiConfig(t, peer, dir, port, 65011), 0o640); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfgPath, Socket: filepath.Join(dir, "switchd.sock"), StateDir: dir,
			GNMISocket: filepath.Join(dir, "gnmi.sock"),
			Logger:     slog.New(slog.NewTextHandler(testLogOut(), nil)), StateInterval: 200 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the self-signed certificate", func() error {
		_, err := os.Stat(filepath.Join(dir, gnmi.SelfSignedCert))
		return err
	})
	return peer, dir
}

// TestGNMICLIPrivileged drives the running daemon with gnmi_cli (the
// reference client), over TLS verified against the daemon's self-signed
// certificate, logged in as the read-only user: Capabilities lists the
// models and JSON_IETF; a Get of every interface's oper-status has the
// peer's veth UP; a Get of each neighbor's session-state, in JSON_IETF,
// is ESTABLISHED.
func TestGNMICLIPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	bin := clientBinary(t, "gnmi_cli")
	const port = 50061
	peer, dir := startGNMIDaemon(t, 7, port)
	cli := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-logtostderr", "-a", fmt.Sprintf("127.0.0.1:%d", port),
			"-ca_crt", filepath.Join(dir, gnmi.SelfSignedCert), "-server_name", "localhost",
			"-with_user_pass", "-timeout", "10s"}, args...)...)
		// gnmi_cli reads the credentials from these rather than prompting.
		cmd.Env = append(os.Environ(), "GNMI_USER=viewer", "GNMI_PASS="+gnmiViewerPW)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	get := func(path string) (string, error) {
		p, err := ygot.StringToStructuredPath(path)
		if err != nil {
			t.Fatal(err)
		}
		req, err := prototext.Marshal(&gpb.GetRequest{Path: []*gpb.Path{p}, Encoding: gpb.Encoding_JSON_IETF})
		if err != nil {
			t.Fatal(err)
		}
		return cli("-get", "-proto", string(req))
	}

	waitFor(t, "gnmi_cli -capabilities listing the models", func() error {
		out, err := cli("-capabilities")
		for _, want := range []string{"openconfig-interfaces", "openconfig-network-instance", "JSON_IETF"} {
			if err != nil || !strings.Contains(out, want) {
				return fmt.Errorf("%v, want %s:\n%s", err, want, out)
			}
		}
		return nil
	})
	link := fmt.Sprintf("tofrr%d", peer.n)
	waitFor(t, "gnmi_cli -get of oper-status: "+link+" UP", func() error {
		out, err := get("/interfaces/interface[name=*]/state/oper-status")
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		if v, ok := cliValue(out, `value:"`+link+`"`); !ok || v != `"UP"` {
			return fmt.Errorf("%s's oper-status %s (found %v), want \"UP\":\n%s", link, v, ok, out)
		}
		return nil
	})
	for _, a := range []string{peer.addr4().String(), peer.addr6().String()} {
		waitFor(t, "gnmi_cli -get of "+a+"'s session-state ESTABLISHED", func() error {
			out, err := get("/" + nbrPath + "neighbors/neighbor[neighbor-address=" + a + "]/state/session-state")
			if err != nil {
				return fmt.Errorf("%v:\n%s", err, out)
			}
			if v, ok := cliValue(out, `value:"`+a+`"`); !ok || v != `"ESTABLISHED"` {
				return fmt.Errorf("session-state %s (found %v), want \"ESTABLISHED\":\n%s", v, ok, out)
			}
			return nil
		})
	}
}

// cliValue finds, in gnmi_cli's text-proto GetResponse, the update
// whose path (or its notification's prefix) holds key, and returns its
// JSON_IETF value unquoted once (the proto's bytes are a JSON text).
func cliValue(out, key string) (string, bool) {
	flat := strings.Join(strings.Fields(out), "")
	for _, n := range strings.Split(flat, "notification")[1:] {
		prefixHas := false
		if i := strings.Index(n, "update"); i >= 0 {
			prefixHas = strings.Contains(n[:i], key)
		}
		for _, u := range strings.Split(n, "update")[1:] {
			if !prefixHas && !strings.Contains(u, key) {
				continue
			}
			i := strings.Index(u, `json_ietf_val:`)
			if i < 0 {
				continue
			}
			v, err := strconv.QuotedPrefix(u[i+len(`json_ietf_val:`):])
			if err != nil {
				return "", false
			}
			s, err := strconv.Unquote(v)
			return s, err == nil
		}
	}
	return "", false
}

// clientBinary finds a gNMI client where .ci/tools-gnmi installs it, or
// skips.
func clientBinary(t *testing.T, name string) string {
	t.Helper()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s not found in $(go env GOPATH)/bin or PATH; install it with: bash .ci/tools-gnmi (make tools)", name)
	return ""
}

// TestGNMISamplePrivileged subscribes with gnmic to the running daemon
// in SAMPLE mode at 1 s. While a ping runs through the peer's veth, the
// veth's in-pkts samples strictly increase. On its mtu, which does not
// change, suppress_redundant sends the leaf once, and with a 2 s
// heartbeat sends it again. Time is counted in the in-pkts
// subscription's samples, not by the test's clock, so a loaded machine
// delays the test but does not fail it.
func TestGNMISamplePrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	bin := gnmicBin(t)
	const port = 50062
	peer, dir := startGNMIDaemon(t, 8, port)
	c := &gnmicClient{bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	waitFor(t, "gnmic capabilities", func() error {
		out, err := c.run("viewer", gnmiViewerPW, "capabilities")
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})

	// The ping runs for the whole test; its replies come in on the veth.
	ctx, cancel := context.WithCancel(context.Background())
	ping := exec.CommandContext(ctx, "ping", "-i", "0.2", "-W", "1", peer.addr4().String())
	if err := ping.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		ping.Wait()
	})

	ifPath := fmt.Sprintf("/interfaces/interface[name=tofrr%d]/state/", peer.n)
	sample := func(path string, extra ...string) *gnmicStream {
		return c.stream(t, "viewer", gnmiViewerPW, append([]string{"subscribe", "--mode", "stream", "--stream-mode", "sample",
			"-i", "1s", "--path", ifPath + path}, extra...)...)
	}
	// Started in this order so that the in-pkts subscription's samples
	// count time that the two others have seen too.
	quiet := sample("mtu", "--suppress-redundant")
	beat := sample("mtu", "--suppress-redundant", "--heartbeat-interval", "2s")
	pkts := sample("counters/in-pkts")

	const samples = 6
	var in []uint64
	waitFor(t, fmt.Sprintf("%d in-pkts samples", samples), func() error {
		out, done := pkts.output()
		vs, err := gnmicValues(out, "in-pkts")
		if err != nil || done || len(vs) < samples {
			return fmt.Errorf("%d samples (%v), exited %v:\n%s", len(vs), err, done, out)
		}
		in = in[:0]
		for _, v := range vs {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("in-pkts %q: %v", v, err)
			}
			in = append(in, n)
		}
		return nil
	})
	for i := 1; i < len(in); i++ {
		if in[i] <= in[i-1] {
			t.Errorf("in-pkts samples while pinging %v: not strictly increasing at %d", in, i)
			break
		}
	}
	// At least (samples-1) intervals have passed since the two mtu
	// subscriptions started: the heartbeat's has resent the leaf, the
	// other has not.
	out, _ := quiet.output()
	if vs, err := gnmicValues(out, "mtu"); err != nil || len(vs) != 1 {
		t.Errorf("mtu with suppress_redundant over %d samples of in-pkts: %d updates (%v), want 1:\n%s", len(in), len(vs), err, out)
	}
	waitFor(t, "the heartbeat resending mtu", func() error {
		out, _ := beat.output()
		if vs, err := gnmicValues(out, "mtu"); err != nil || len(vs) < 2 {
			return fmt.Errorf("%d updates (%v), want 2 or more:\n%s", len(vs), err, out)
		}
		return nil
	})
	out, _ = beat.output()
	vs, _ := gnmicValues(out, "mtu")
	for _, v := range vs {
		if v != vs[0] {
			t.Errorf("mtu changed during the test (%v): the leaf was not idle", vs)
		}
	}
}

// gnmicValues decodes gnmic's JSON output (one object per notification)
// and returns, in order, the values of the leaves whose path ends in
// leaf.
func gnmicValues(out, leaf string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(out[max(0, strings.Index(out, "{")):]))
	dec.UseNumber()
	var vs []string
	for {
		var msg struct {
			Updates []struct {
				Path   string
				Values map[string]any
			}
		}
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return vs, nil // the end, or a notification still being written
		}
		if err != nil {
			return vs, err
		}
		for _, u := range msg.Updates {
			for p, v := range u.Values {
				if p == leaf || strings.HasSuffix(p, "/"+leaf) { // gnmic may cut the prefix off
					vs = append(vs, fmt.Sprint(v))
				}
			}
		}
	}
}

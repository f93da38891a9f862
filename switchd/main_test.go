package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
	"github.com/switchd/switchd/switchd/config/configtest"
)

const neighborPath = "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/neighbors/neighbor[neighbor-address=10.1.1.0]"

// badConfigs breaks examples/leaf.json in the ways `switchd check` must
// catch, each with the OpenConfig path its message must name.
var badConfigs = []struct {
	name   string
	break_ func(doc map[string]any)
	path   string
}{
	{"unknown leaf", inBGP(func(b map[string]any) { firstNeighborConfig(b)["peer-asn"] = 65000 }), neighborPath + "/config/peer-asn"},
	{"wrong type", inBGP(func(b map[string]any) { firstNeighborConfig(b)["peer-as"] = "sixty-five thousand" }), neighborPath + "/config/peer-as"},
	{"invalid IP address", inBGP(func(b map[string]any) {
		b["global"].(map[string]any)["config"].(map[string]any)["router-id"] = "10.0.0.300"
	}), "/network-instances/network-instance[name=DEFAULT]/protocols/protocol[identifier=BGP][name=BGP]/bgp/global/config/router-id"},
	{"neighbor without peer-as", inBGP(func(b map[string]any) {
		c := firstNeighborConfig(b)
		delete(c, "peer-group")
		delete(c, "peer-as")
	}), neighborPath + "/config/peer-as"},
	{"duplicate list key", inBGP(func(b map[string]any) {
		ns := b["neighbors"].(map[string]any)
		list := ns["neighbor"].([]any)
		dup, _ := json.Marshal(list[0])
		var n any
		json.Unmarshal(dup, &n)
		ns["neighbor"] = append(list, n)
	}), neighborPath},
	{"workload policy selector that does not parse", func(doc map[string]any) {
		doc["switchd:switchd"] = map[string]any{"workload-policy": map[string]any{"policies": map[string]any{"policy": []any{
			map[string]any{"name": "db", "config": map[string]any{"name": "db", "selector": "role == db"}}}}}}
	}, "/switchd/workload-policy/policies/policy[name=db]/config/selector"},
	{"ACL entry with a port but no protocol", withACLEntry(map[string]any{
		"transport": map[string]any{"config": map[string]any{"destination-port": 22}}}),
		aclEntryPath + "/transport/config/destination-port"},
	{"IPv6 prefix in an ACL_IPV4 set", withACLEntry(map[string]any{
		"ipv6": map[string]any{"config": map[string]any{"source-address": "fd00::/8"}}}),
		aclEntryPath + "/ipv6"},
	{"unknown defined set", withACLEntry(map[string]any{
		"ipv4": map[string]any{"config": map[string]any{"source-address-prefix-set": "nowhere"}}}),
		aclEntryPath + "/ipv4/config/source-address-prefix-set"},
}

const aclEntryPath = "/acl/acl-sets/acl-set[name=in][type=ACL_IPV4]/acl-entries/acl-entry[sequence-id=10]"

// withACLEntry adds an ACL_IPV4 set "in" whose entry 10 (DROP) has the
// given match containers.
func withACLEntry(match map[string]any) func(doc map[string]any) {
	return func(doc map[string]any) {
		e := map[string]any{"sequence-id": 10, "config": map[string]any{"sequence-id": 10},
			"actions": map[string]any{"config": map[string]any{"forwarding-action": "openconfig-acl:DROP"}}}
		for k, v := range match {
			e[k] = v
		}
		doc["openconfig-acl:acl"] = map[string]any{"acl-sets": map[string]any{"acl-set": []any{map[string]any{
			"name": "in", "type": "openconfig-acl:ACL_IPV4",
			"config":      map[string]any{"name": "in", "type": "openconfig-acl:ACL_IPV4"},
			"acl-entries": map[string]any{"acl-entry": []any{e}}}}}}
	}
}

// inBGP applies break_ to the BGP tree of the document.
func inBGP(break_ func(bgp map[string]any)) func(doc map[string]any) {
	return func(doc map[string]any) {
		ni := doc["openconfig-network-instance:network-instances"].(map[string]any)["network-instance"].([]any)[0].(map[string]any)
		for _, p := range ni["protocols"].(map[string]any)["protocol"].([]any) {
			if bgp, ok := p.(map[string]any)["bgp"].(map[string]any); ok {
				break_(bgp)
			}
		}
	}
}

func firstNeighborConfig(b map[string]any) map[string]any {
	return b["neighbors"].(map[string]any)["neighbor"].([]any)[0].(map[string]any)["config"].(map[string]any)
}

// writeBadConfig writes examples/leaf.json with one defect into dir.
func writeBadConfig(t *testing.T, dir string, break_ func(doc map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile("../examples/leaf.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	break_(doc)
	out, _ := json.MarshalIndent(doc, "", " ")
	path := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*")
	if len(files) < 3 {
		t.Fatalf("want at least 3 example configs, found %v", files)
	}
	for _, f := range files {
		var out, errb bytes.Buffer
		if code := run([]string{"check", "--config", f}, &out, &errb); code != 0 {
			t.Errorf("switchd check %s: exit %d\n%s", f, code, errb.String())
		}
	}
}

func TestCheckRejectsBadConfig(t *testing.T) {
	for _, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			path := writeBadConfig(t, t.TempDir(), c.break_)
			var out, errb bytes.Buffer
			code := run([]string{"check", "--config", path}, &out, &errb)
			if code == 0 {
				t.Fatalf("switchd check accepted a config with %s", c.name)
			}
			if !strings.Contains(errb.String(), c.path+":") {
				t.Fatalf("switchd check output does not name %s:\n%s", c.path, errb.String())
			}
		})
	}
}

// TestRunAppliesNothingFromBadConfigPrivileged starts the daemon (in the
// private namespace ns.TestMain gives this test binary) with each bad
// config: it must exit non-zero before opening its API socket, listening
// for BGP or writing a route.
func TestRunAppliesNothingFromBadConfigPrivileged(t *testing.T) {
	ns.Privileged(t)
	if os.Getenv("SWITCHD_TEST_NETNS") == "" {
		t.Skip("needs ns.TestMain's private namespace")
	}
	for _, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeBadConfig(t, dir, c.break_)
			sock := filepath.Join(dir, "switchd.sock")
			var errb bytes.Buffer
			code := run([]string{"run", "--config", path, "--socket", sock, "--state-dir", filepath.Join(dir, "state")}, &bytes.Buffer{}, &errb)
			if code == 0 {
				t.Fatal("switchd run accepted a bad config")
			}
			if !strings.Contains(errb.String(), c.path) {
				t.Errorf("switchd run error does not name %s:\n%s", c.path, errb.String())
			}
			if _, err := os.Stat(sock); err == nil {
				t.Error("switchd run opened its API socket")
			}
			if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
				t.Error("switchd run created its state dir")
			}
			ln, err := net.Listen("tcp", ":179")
			if err != nil {
				t.Errorf("BGP port is taken after a rejected run: %v", err)
			} else {
				ln.Close()
			}
			rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: fib.Protocol}, netlink.RT_FILTER_PROTOCOL)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 0 {
				t.Errorf("switchd run left %d routes: %v", len(rs), rs)
			}
		})
	}
}

// TestSimConfigsValid runs every config the simulator generates for the
// default fabric through the config loader and checks what each node
// originates and whom it peers with.
func TestSimConfigsValid(t *testing.T) {
	f, err := sim.New(sim.Default(), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Nodes() {
		in := simConfig(t, f, n)
		want := []netip.Prefix{netip.PrefixFrom(n.Loopback4, 32), netip.PrefixFrom(n.Loopback6, 128)}
		if !slices.Equal(in.BGP.Originate, want) {
			t.Errorf("%s originates %v, want its loopbacks %v", n.Name, in.BGP.Originate, want)
		}
		if got, want := len(in.BGP.Neighbors), 2*len(n.Interfaces); got != want {
			t.Errorf("%s has %d neighbors, want %d (IPv4 and IPv6 per link)", n.Name, got, want)
		}
		if in.BGP.ASN != n.ASN || in.BGP.RouterID != n.RouterID || !in.BGP.Multipath.Enabled {
			t.Errorf("%s: global %d %v multipath %v, want %d %v and multipath", n.Name, in.BGP.ASN, in.BGP.RouterID, in.BGP.Multipath.Enabled, n.ASN, n.RouterID)
		}
	}
}

// TestHelpExitsZero: -h and --help print the usage and exit 0 for every
// subcommand (flag's default is 2, as for a usage error).
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"run", "-h"}, {"run", "--help"}, {"check", "-h"}, {"check", "--help"},
		{"sim", "-h"}, {"sim", "up", "-h"}, {"sim", "status", "-h"}, {"sim", "exec", "-h"},
		{"sim", "matrix", "-h"}, {"sim", "down", "--help"},
		{"show", "-h"}, {"show", "--help"}, {"show", "bgp", "-h"}, {"show", "route", "--help"},
		{"get", "-h"}, {"set", "-h"}, {"set", "--help"}, {"version", "-h"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Errorf("switchd %s: exit %d, want 0\n%s", strings.Join(args, " "), code, errb.String())
		}
		// (sim's no-argument commands print theirs on os.Stderr.)
		if args[0] != "sim" && !strings.Contains(strings.ToLower(out.String()+errb.String()), "usage") {
			t.Errorf("switchd %s printed no usage:\n%s%s", strings.Join(args, " "), out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--no-such-flag"}, &out, &errb); code != 2 {
		t.Errorf("switchd check --no-such-flag: exit %d, want 2", code)
	}
}

// nestedFile writes size bytes of '[' (a JSON array nested size deep):
// what crashed switchd with a fatal stack overflow before decoding was
// bounded.
func nestedFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte("["), size), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckRefusesDeeplyNestedFile runs the real binary, so that a stack
// overflow (which kills the process, not the test) shows as a crash.
func TestCheckRefusesDeeplyNestedFile(t *testing.T) {
	bin := simtest.SwitchdBinary(t)
	dir := t.TempDir()
	for _, name := range []string{"nested.json", "nested.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			nestedFile(t, path, 10<<20)
			cmd := exec.Command(bin, "check", "--config", path)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("switchd check: %v, want exit status 1\n%.2000s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "nested more than") && !strings.Contains(stderr.String(), "exceeded max depth") {
				t.Errorf("switchd check does not say the file is nested too deep:\n%.2000s", stderr.String())
			}
			// Bounded memory: the file is 10 MB; the crash took ~1 GB.
			if rss := ee.SysUsage().(*syscall.Rusage).Maxrss; rss > 200<<10 {
				t.Errorf("switchd check used %d MB of memory", rss>>10)
			}
			t.Logf("%s: %s (max RSS %d MB)", name, strings.TrimSpace(stderr.String()), ee.SysUsage().(*syscall.Rusage).Maxrss>>10)
		})
	}
}

// reloadConfig is a small valid config: one neighbor that never answers.
var reloadConfig = configtest.BGP{ASN: 65001, RouterID: "10.0.0.1",
	Neighbors: []configtest.Neighbor{{Address: "192.0.2.1", PeerAS: 65002}}}.JSON()

// TestReloadOfDeeplyNestedFileKeepsDaemonPrivileged starts the real
// daemon in a namespace of its own, replaces its config with 10 MB of
// nested '[' and sends SIGHUP: the daemon must log the reload as rejected
// and go on serving the config it had.
func TestReloadOfDeeplyNestedFileKeepsDaemonPrivileged(t *testing.T) {
	n := ns.NewT(t, "reload")
	bin := simtest.SwitchdBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchd.json")
	if err := os.WriteFile(cfg, reloadConfig, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "switchd.sock")
	ctx := t.Context()
	d := startSwitchd(t, n, bin, "run", "--config", cfg, "--socket", sock, "--state-dir", filepath.Join(dir, "state"))
	cmd, logs, alive := d.cmd, d.logs, d.alive
	serving := func() error {
		if err := alive(); err != nil {
			t.Fatal(err)
		}
		st, err := sim.SwitchdStatus(ctx, sock)
		if err != nil {
			return err
		}
		if st.BGP.ASN != 65001 || len(st.BGP.Neighbors) != 1 || st.BGP.Neighbors[0].Address != "192.0.2.1" {
			return fmt.Errorf("status is not the first config's: %+v", st.BGP)
		}
		return nil
	}
	waitFor(t, 30*time.Second, "switchd serves its config", serving)

	nestedFile(t, cfg, 10<<20)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the reload is rejected in the log", func() error {
		if err := alive(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "config reload rejected") {
			return fmt.Errorf("not yet; log:\n%s", logs.String())
		}
		return nil
	})
	if err := serving(); err != nil {
		t.Fatalf("after the rejected reload: %v", err)
	}
	if !strings.Contains(logs.String(), "nested more than") {
		t.Errorf("the log does not say why the reload was rejected:\n%s", logs.String())
	}
}

// runningSwitchd is a switchd process a test started in a namespace.
type runningSwitchd struct {
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan error
}

// startSwitchd starts bin with args in n, its output kept in logs; the
// test's cleanup kills it.
func startSwitchd(t testing.TB, n *ns.NS, bin string, args ...string) *runningSwitchd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := &runningSwitchd{cmd: n.Command(ctx, append([]string{bin}, args...)...), logs: &lockedBuffer{}, exited: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
	})
	return d
}

// alive says whether the process still runs: an error with its log if
// it exited.
func (d *runningSwitchd) alive() error {
	select {
	case err := <-d.exited:
		d.exited <- err
		return fmt.Errorf("switchd exited: %v\n%s", err, d.logs.String())
	default:
		return nil
	}
}

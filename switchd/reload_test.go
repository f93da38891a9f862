package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchd/switchd/sim/ns"
	"github.com/switchd/switchd/sim/simtest"
)

// nftCounters are the parts of an nft listing that traffic changes.
var nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// TestReloadRefusesBadConfigPrivileged runs the daemon on
// examples/leaf.json with an extra failsafe port (9100) and sends SIGHUP
// for each of badConfigs, each carrying a valid change too (failsafe
// port 9200): the reload is refused with the OpenConfig path in the log,
// the nftables table is exactly as before (no 9200, no half-applied
// part) and the daemon keeps running. The same defects are refused by
// `switchd check` and `switchd run` in main_test.go.
func TestReloadRefusesBadConfigPrivileged(t *testing.T) {
	n := ns.NewT(t, "badreload")
	bin := simtest.SwitchdBinary(t)
	dir := t.TempDir()
	withFailsafe := func(port int) func(doc map[string]any) {
		return func(doc map[string]any) {
			sw, _ := doc["switchd:switchd"].(map[string]any)
			if sw == nil {
				sw = map[string]any{}
				doc["switchd:switchd"] = sw
			}
			sw["failsafe"] = map[string]any{"config": map[string]any{"tcp-port": []any{port}}}
		}
	}
	cfg := writeBadConfig(t, dir, withFailsafe(9100))
	ctx := t.Context()
	d := startSwitchd(t, n, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "switchd.sock"),
		"--gnmi-socket", filepath.Join(dir, "gnmi.sock"), "--state-dir", filepath.Join(dir, "state"))
	cmd, logs := d.cmd, d.logs
	alive := func() {
		if err := d.alive(); err != nil {
			t.Fatal(err)
		}
	}
	table := func() (string, error) {
		out, err := n.Command(ctx, "nft", "list", "table", "inet", "switchd").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("nft list table: %v: %s", err, out)
		}
		return nftCounters.ReplaceAllString(string(out), "counter"), nil
	}
	var before string
	waitFor(t, 30*time.Second, "the table holds failsafe port 9100", func() error {
		alive()
		s, err := table()
		if err != nil {
			return err
		}
		if !strings.Contains(s, "9100") {
			return fmt.Errorf("no 9100 in:\n%s", s)
		}
		before = s
		return nil
	})

	for i, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			writeBadConfig(t, dir, func(doc map[string]any) {
				c.break_(doc)
				withFailsafe(9200)(doc)
			})
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the reload is refused in the log", func() error {
				alive()
				if got := strings.Count(logs.String(), "config reload rejected"); got < i+1 {
					return fmt.Errorf("%d refusals logged, want %d", got, i+1)
				}
				return nil
			})
			if !strings.Contains(logs.String(), c.path) {
				t.Errorf("the log does not name %s:\n%s", c.path, logs.String())
			}
			after, err := table()
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Errorf("the table changed on a refused reload:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// A good file again is taken: the refusals above were the defects'.
	writeBadConfig(t, dir, withFailsafe(9200))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a valid reload puts 9200 in the table", func() error {
		alive()
		s, err := table()
		if err != nil {
			return err
		}
		if !strings.Contains(s, "9200") {
			return fmt.Errorf("no 9200 yet")
		}
		return nil
	})
}

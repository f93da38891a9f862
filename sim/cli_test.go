package sim_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchd/switchd/sim"
	"github.com/switchd/switchd/sim/ns"
)

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := sim.Main(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no args: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := sim.Main([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errb.String())
	}
}

// TestCLIPrivileged drives `switchd sim` as a user would, with a BIRD-only
// topology and the run root moved to a temporary directory.
func TestCLIPrivileged(t *testing.T) {
	ns.Privileged(t)
	root := t.TempDir()
	old := sim.RunRoot
	sim.RunRoot = root
	defer func() { sim.RunRoot = old }()
	topo := filepath.Join(root, "triangle.yaml")
	os.WriteFile(topo, []byte(`
name: triangle
nodes:
  - {name: spine1, role: spine, asn: 65000, kind: bird}
  - {name: leaf1, role: leaf, asn: 65001, kind: bird}
  - {name: leaf2, role: leaf, asn: 65002, kind: bird}
links: [[leaf1, spine1], [leaf2, spine1]]
`), 0o644)
	prefix := ns.RunPrefix() + "cli"
	main := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := sim.Main(args, &out, &errb)
		t.Logf("switchd sim %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		return code, out.String(), errb.String()
	}
	defer main("down")

	if code, _, _ := main("status"); code == 0 {
		t.Errorf("status without a fabric: exit 0")
	}
	code, out, _ := main("up", "--topology", topo, "--prefix", prefix, "--timeout", "1m")
	if code != 0 || !strings.Contains(out, "converged") || !strings.Contains(out, "leaf2") {
		t.Fatalf("up: exit %d", code)
	}
	if code, _, errs := main("up", "--topology", topo); code == 0 || !strings.Contains(errs, "fabric "+prefix+" is up; run switchd sim down") {
		t.Errorf("second up: exit %d", code)
	}
	if code, out, _ := main("status"); code != 0 || !strings.Contains(out, "2/2") {
		t.Errorf("status: exit %d", code)
	}
	if code, out, _ := main("exec", "leaf1", "--", "ip", "-br", "addr", "show", "dev", "lo"); code != 0 || !strings.Contains(out, "10.255.0.2/32") {
		t.Errorf("exec: exit %d", code)
	}
	if code, _, _ := main("exec", "leaf1", "--", "false"); code != 1 {
		t.Errorf("exec false: exit %d, want 1", code)
	}
	if code, out, _ := main("matrix"); code != 0 || strings.Contains(out, "FAIL") {
		t.Errorf("matrix: exit %d", code)
	}
	if code, out, _ := main("down"); code != 0 || !strings.Contains(out, "fabric "+prefix+" down") {
		t.Errorf("down: exit %d", code)
	}
	if left, _ := ns.List(prefix + "-"); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 { // the topology file
		t.Errorf("run root not empty after down: %v", ents)
	}
	if code, out, _ := main("down"); code != 0 || !strings.Contains(out, "no fabric was up") {
		t.Errorf("second down: exit %d", code)
	}
}

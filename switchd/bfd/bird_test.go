package bfd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BIRD 2's bfd protocol in b, with a's four sessions as static neighbors
// at 300 ms × 3 (a loaded machine must not flap them).
func TestBIRDPrivileged(t *testing.T) {
	tp := newTopo(t)
	cfgs := peersOfA(300*time.Millisecond, 3)
	e := newEngine(t, tp.a, cfgs...)

	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString("log stderr all;\nrouter id 10.0.0.2;\nprotocol device {}\nprotocol bfd {\n  debug { states, events };\n" +
		"  interface \"*\" { interval 300 ms; multiplier 3; };\n" +
		"  multihop { interval 300 ms; multiplier 3; };\n")
	for _, c := range cfgs {
		c = mirror(c)
		fmt.Fprintf(&conf, "  neighbor %v", c.Peer)
		if c.Interface != "" {
			conf.WriteString(" dev \"eth0\"")
		}
		fmt.Fprintf(&conf, " local %v multihop %v;\n", c.Local, map[bool]string{true: "yes", false: "no"}[c.Multihop])
	}
	conf.WriteString("}\n")
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(p("bird.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	bird := &daemon{ns: tp.b, log: p("bird.out"), argv: []string{"bird", "-f", "-c", p("bird.conf"), "-s", p("bird.ctl")}}
	bird.start(t)

	upAtBIRD := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := tp.b.Run(ctx, "birdc", "-s", p("bird.ctl"), "show", "bfd", "sessions")
		if err != nil {
			return 0, err
		}
		// One line per session: address, interface, state, since, ...
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[2] == "Up" {
				n++
			}
		}
		return n, nil
	}
	peerCycle(t, e, bird, cfgs, upAtBIRD)
}

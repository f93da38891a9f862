package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables/expr"
)

// baseJumps is what each base chain of the engine's table jumps to.
func baseJumps(tb *Table) map[string][]string {
	out := map[string][]string{}
	for name, c := range tb.chains {
		if c.Hook == nil {
			continue
		}
		for _, r := range c.Rules {
			if v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
				out[name] = append(out[name], v.Chain)
			}
		}
	}
	return out
}

// TestPrivilegedEngineComposesSlots fills the failsafe, anti-spoofing and
// workload slots of one Engine: web, selected for egress by a policy with
// no rules, can reach neither db nor the host's tcp/8080, but still the
// host's SSH port (failsafe, and the status says so); a packet web sends
// from an address not its own is dropped and counted by anti-spoofing.
// Turning policy and anti-spoofing off leaves only the failsafe slots.
func TestPrivilegedEngineComposesSlots(t *testing.T) {
	h := newWLHost(t, "web", "db")
	h.listen("db", 5432)
	ctx := context.Background()
	hostAddr := h.eps["web"].Addrs[0].Prev()
	for _, port := range []int{22, 8080} {
		serveTCP(t, h.host, fmt.Sprintf("%v:%d", hostAddr, port))
	}
	if _, err := h.wls["web"].Run(ctx, "ip", "addr", "add", "10.99.0.1/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}

	e := NewEngine(h.host.Net())
	defer e.Close()
	for _, n := range []string{"web", "db"} {
		must(t, e.UpsertEndpoint(h.eps[n]))
	}
	must(t, e.SetFailsafe(FailsafeConfig{}))
	must(t, e.SetAntiSpoof(true))
	must(t, e.SetIntent(Intent{Policies: []Policy{{Name: "lockdown", Selector: MustParseSelector(`role == "web"`), SelectsEgress: true}}}))
	must(t, e.Apply(ctx))

	want := map[string][]string{
		"prerouting": {SlotAntiSpoof},
		"input":      {SlotFailsafeIn, SlotWorkloadInput},
		"forward":    {SlotWorkloadForward},
		"output":     {SlotFailsafeOut},
	}
	got := baseJumps(e.Table())
	for name, slots := range want {
		if !slices.Equal(got[name], slots) {
			t.Errorf("%s jumps to %v, want %v", name, got[name], slots)
		}
	}
	db := h.eps["db"].Addrs[0]
	if h.connect("web", netip.Addr{}, db, 5432, 500*time.Millisecond) {
		t.Error("web reaches db:5432 with its egress denied")
	}
	if h.connect("web", netip.Addr{}, hostAddr, 8080, 500*time.Millisecond) {
		t.Error("web reaches the host's tcp/8080 with its egress denied")
	}
	if !h.connect("web", netip.Addr{}, hostAddr, 22, time.Second) {
		t.Error("web does not reach the host's SSH port: failsafe cut")
	}
	if st := e.Status(); len(st.FailsafeKept) != 1 || !strings.Contains(st.FailsafeKept[0], "lockdown") || !strings.Contains(st.FailsafeKept[0], "tcp/22") {
		t.Errorf("status FailsafeKept %q, want lockdown's cut of tcp/22 reported", st.FailsafeKept)
	}

	// Spoofed: db is open (no policy selects it for ingress), so only
	// anti-spoofing drops this.
	must(t, e.SetIntent(Intent{}))
	must(t, e.Apply(ctx))
	if !h.connect("web", netip.Addr{}, db, 5432, time.Second) {
		t.Fatal("web does not reach db:5432 with no policy")
	}
	h.wls["web"].Run(ctx, "ping", "-c2", "-i0.1", "-W1", "-I", "10.99.0.1", db.String())
	cs, err := e.Table().Counters()
	must(t, err)
	if i := slices.IndexFunc(cs, func(c RuleCounter) bool { return c.ID == RuleSpoof4 }); i < 0 || cs[i].Packets < 2 {
		t.Errorf("spoof4 counter: %+v, want >= 2 packets", cs)
	}

	must(t, e.SetAntiSpoof(false))
	must(t, e.Apply(ctx))
	got = baseJumps(e.Table())
	if len(got) != 2 || !slices.Equal(got["input"], []string{SlotFailsafeIn}) || !slices.Equal(got["output"], []string{SlotFailsafeOut}) {
		t.Errorf("with only failsafe left: base chains %v", got)
	}
	k := newKernel(t, h.host, DefaultName)
	if hs := k.handles(); len(hs["prerouting"]) != 0 || len(hs[SlotAntiSpoof]) != 0 || len(hs[SlotWorkloadForward]) != 0 {
		t.Errorf("kernel chains %v: anti-spoofing or workload chains left", hs)
	}
	if !e.Status().InSync {
		t.Errorf("not in sync: %+v", e.Status())
	}
}

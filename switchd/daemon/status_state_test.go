package daemon

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/switchd/daemon/state"
)

// historyPub is a statePub that also keeps every value published for
// the leaves under watch, so a state the daemon passes through quickly
// (an error cleared by the next retry) is seen whatever the test's pace.
type historyPub struct {
	*statePub
	watch string
	mu    sync.Mutex
	seen  []string
}

func (p *historyPub) Update(n *gpb.Notification) error {
	p.mu.Lock()
	for _, u := range n.GetUpdate() {
		if k := state.PathString(n.GetPrefix(), u.GetPath()); strings.HasPrefix(k, p.watch) {
			p.seen = append(p.seen, k[len(p.watch):]+"="+state.ValueText(u.GetVal()))
		}
	}
	p.mu.Unlock()
	return p.statePub.Update(n)
}

func (p *historyPub) history() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// TestWiringStateStatus: the FIB's and the policy engine's status after
// each Apply reach /switchd/state/fib and /switchd/state/policy; a
// failed policy Apply shows as not in sync with its error, and the retry
// that succeeds clears both.
func TestWiringStateStatus(t *testing.T) {
	pub := &historyPub{statePub: newStatePub(), watch: "switchd/state/policy/"}
	w := newWired(t, testConfig{statics: map[string]string{"10.20.0.0/16": "10.0.0.1"}}, func(w *wired) { w.state = pub })
	w.d.linkStats = &testLinkStats{}
	w.run(t)
	pub.waitLeaf(t, "switchd/state/fib/routes", "1", false)
	pub.waitLeaf(t, "switchd/state/fib/in-sync", "true", false)
	pub.waitLeaf(t, "switchd/state/policy/in-sync", "true", false)
	if v, ok := pub.get("switchd/state/policy/last-apply"); !ok || v == "" {
		t.Errorf("policy last-apply = %q, %v; want a time", v, ok)
	}

	w.pe.failNext(1)
	w.eps.publish(endpointEvent(host.EndpointAdded, "c1/eth0", "swd1", "10.1.0.2", "", map[string]string{"role": "db"}))
	waitFor(t, "a failed policy Apply, then its retry", func() error {
		h := pub.history()
		// The leaves of one notification come in no order: the error
		// and in-sync=false come together, the clearing after both.
		failed := slices.IndexFunc(h, func(s string) bool { return strings.HasPrefix(s, "last-error=") && len(s) > len("last-error=") })
		if failed < 0 || !slices.Contains(h, "in-sync=false") || !slices.Contains(h[failed:], "last-error=") ||
			!slices.Contains(h[slices.Index(h, "in-sync=false"):], "in-sync=true") {
			return fmt.Errorf("policy status history %q", h)
		}
		return nil
	})
}

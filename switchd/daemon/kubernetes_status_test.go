package daemon

import (
	"log/slog"
	"sync/atomic"
	"testing"
)

// failingKube is the test Watcher with a count of requests that got no
// answer, changed by the test.
type failingKube struct {
	*testKube
	failures atomic.Int64
}

func (k *failingKube) RequestFailures() int { return int(k.failures.Load()) }

// TestKubeStatusRequestFailuresCurrent: the status has the kubernetes
// block from cluster mode's start, and its request failures are the
// Watcher's when the status is read, with no loop turn to publish them
// (a lost API server sends no feed); the published status is not
// changed by a read.
func TestKubeStatusRequestFailuresCurrent(t *testing.T) {
	d := newDaemon(Options{Logger: slog.New(slog.DiscardHandler)})
	if st := d.Status(); st.Kubernetes != nil {
		t.Fatalf("not in cluster mode: kubernetes status %+v", *st.Kubernetes)
	}
	k := &failingKube{testKube: &testKube{kick: make(chan struct{}, 1)}}
	d.setKubeWatcher(k, "node1")
	ks := d.Status().Kubernetes
	if ks == nil || ks.Node != "node1" || ks.RequestFailures != 0 {
		t.Fatalf("cluster mode started: kubernetes status %+v, want node1 with no failures", ks)
	}
	for _, n := range []int64{1, 5, 6} {
		k.failures.Store(n)
		if got := d.Status().Kubernetes.RequestFailures; got != int(n) {
			t.Errorf("after %d failures the status reads %d", n, got)
		}
	}
	if got := d.status.load().Kubernetes.RequestFailures; got != 0 {
		t.Errorf("a read changed the published status: %d request failures", got)
	}
}

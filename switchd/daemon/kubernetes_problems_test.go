package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

// logRecords is a slog.Handler that keeps each record as "LEVEL msg
// err=value".
type logRecords struct {
	mu   sync.Mutex
	recs []string
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += fmt.Sprintf(" %s=%s", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, s)
	h.mu.Unlock()
	return nil
}

// take returns the records since the last take.
func (h *logRecords) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.recs
	h.recs = nil
	return r
}

// TestKubeProblemsLoggedOnChange: a Compile's problems are logged when
// they appear and when they are gone, keyed by their text (which names
// the policy), not again at each Compile that still has them; the
// status counts the problems of the last Compile.
func TestKubeProblemsLoggedOnChange(t *testing.T) {
	h := &logRecords{}
	log := slog.New(h)
	k := &kubeLoop{}
	cidr := errors.New("NetworkPolicy x/bad-cidr: ingress[0].from[0].ipBlock: cidr \"10.0.0.0/33\": bad; the peer matches nothing")
	port := errors.New("NetworkPolicy x/no-port: ingress[0].ports[0]: named port tcp/web: no pod has it")
	portY := errors.New("NetworkPolicy y/no-port: ingress[0].ports[0]: named port tcp/web: no pod has it")
	warn := func(err error) string { return "WARN network policy partly left out err=" + err.Error() }
	gone := func(err error) string { return "INFO network policy problem gone err=" + err.Error() }
	for _, step := range []struct {
		name     string
		problems []error
		logged   []string
		count    int // problems in the status
	}{
		{"first", []error{cidr, port}, []string{warn(cidr), warn(port)}, 2},
		{"again", []error{port, cidr}, nil, 2},
		{"twice in one compile", []error{cidr, port, cidr}, nil, 2},
		{"same text, other policy", []error{cidr, port, portY}, []string{warn(portY)}, 3},
		{"one gone", []error{port, portY}, []string{gone(cidr)}, 2},
		{"back and gone", []error{cidr}, []string{warn(cidr), gone(port), gone(portY)}, 1},
		{"none", nil, []string{gone(cidr)}, 0},
		{"still none", nil, nil, 0},
	} {
		k.takeProblems(log, step.problems)
		if got := h.take(); !slices.Equal(got, step.logged) {
			t.Errorf("%s: logged\n%q\nwant\n%q", step.name, got, step.logged)
		}
		if n := len(k.problems); n != step.count {
			t.Errorf("%s: %d problems counted, want %d", step.name, n, step.count)
		}
	}
}

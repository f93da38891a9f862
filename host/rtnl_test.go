package host

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestWrapNeverLosesAnError: a batch that failed as a whole (socket error,
// no ack) is still an error, and per-message failures name their message.
func TestWrapNeverLosesAnError(t *testing.T) {
	a, b := linkUpMsg(7, "set a up"), linkUpMsg(8, "set b up")
	if err := wrap(errors.New("rtnetlink: no answer"), a, b); err == nil || !strings.Contains(err.Error(), "set a up (and 1 more)") {
		t.Errorf("socket failure: %v", err)
	}
	b.err = syscall.ENODEV
	err := wrap(b.err, a, b)
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "set b up") || strings.Contains(err.Error(), "set a up") {
		t.Errorf("message failure: %v", err)
	}
	b.err = nil
	if err := wrap(nil, a, b); err != nil {
		t.Errorf("no failure: %v", err)
	}
}

package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/switchd/switchd/platform"
	"github.com/switchd/switchd/switchd/config"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// /interfaces: the config's interface settings go to the reconciler
// (platform.Interfaces) as desired state from applyIntent; its Apply runs
// at the end of every loop turn, before policy's and the FIB's (an
// address it adds is the connected route a static or a BGP next hop
// resolves through), and does nothing when nothing changed. Its kick (a
// configured link appeared or changed, an address of ours went) and its
// retry timer only wake the loop.

// ifaceReconciler is the interface reconciler (*platform.Interfaces); the
// loop goroutine owns it.
type ifaceReconciler interface {
	SetInterface(c platform.InterfaceConfig)
	DeleteInterface(name string)
	Names() []string
	QueueResync()
	Kick() <-chan struct{}
	Missing() []string
	Apply(ctx context.Context) error
	NextRetry() time.Time
	Close()
}

var _ ifaceReconciler = (*platform.Interfaces)(nil)

// ifLoop is the loop's bookkeeping of the reconciler.
type ifLoop struct {
	retry   chan struct{} // a failed write is due again
	timer   *time.Timer
	lastErr string
	missing []string
	// published: the status has the reconciler's part.
	published bool
}

// openInterfaces makes the real reconciler in the daemon's namespace.
func openInterfaces() (ifaceReconciler, error) {
	r, err := platform.NewInterfaces(nil)
	if err != nil {
		return nil, err // not a nil *Interfaces in an interface
	}
	return r, nil
}

// setInterfaces makes the config's interfaces desired (no kernel access).
func (d *Daemon) setInterfaces(in *config.Intent) {
	if d.ifaces == nil {
		return
	}
	want := make(map[string]bool, len(in.Interfaces))
	for _, c := range in.Interfaces {
		want[c.Name] = true
		d.ifaces.SetInterface(c)
	}
	for _, name := range d.ifaces.Names() {
		if !want[name] {
			d.ifaces.DeleteInterface(name)
		}
	}
}

// applyInterfaces writes what the kernel lacks of the config's
// interfaces, logs what changed in its outcome, publishes the status and
// arms the retry of failed writes.
func (d *Daemon) applyInterfaces(ctx context.Context) {
	if d.ifaces == nil {
		return
	}
	err := d.ifaces.Apply(ctx)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	l := &d.ifl
	if msg != l.lastErr {
		if err != nil {
			d.log.Warn("interfaces: config not fully applied; will retry", "err", err)
		} else if l.lastErr != "" {
			d.log.Info("interfaces: config applied")
		}
	}
	missing := d.ifaces.Missing()
	if !slices.Equal(missing, l.missing) && len(missing) > 0 {
		d.log.Warn("interfaces: configured but not in the kernel; configured when they appear", "interfaces", missing)
	}
	changed := msg != l.lastErr || !slices.Equal(missing, l.missing)
	l.lastErr, l.missing = msg, missing
	if changed || !l.published {
		l.published = true
		n := len(d.ifaces.Names())
		d.status.update(func(st *Status) {
			st.Interfaces = nil
			if n > 0 {
				st.Interfaces = &apiclient.InterfacesStatus{Configured: n, Missing: missing, LastError: msg}
			}
		})
	}
	d.armInterfacesRetry()
}

// armInterfacesRetry wakes the loop when the reconciler wants failed
// writes tried again.
func (d *Daemon) armInterfacesRetry() {
	l := &d.ifl
	if l.retry == nil {
		l.retry = make(chan struct{}, 1)
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	next := d.ifaces.NextRetry()
	if next.IsZero() {
		return
	}
	retry := l.retry
	l.timer = time.AfterFunc(max(time.Until(next), 10*time.Millisecond), func() {
		select {
		case retry <- struct{}{}:
		default:
		}
	})
}

// resyncInterfaces makes the next Apply compare with a fresh dump.
func (d *Daemon) resyncInterfaces() {
	if d.ifaces != nil {
		d.ifaces.QueueResync()
	}
}

// ifaceKick is the reconciler's signal; nil (never ready) without one.
func (d *Daemon) ifaceKick() <-chan struct{} {
	if d.ifaces == nil {
		return nil
	}
	return d.ifaces.Kick()
}

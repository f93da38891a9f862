package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/switchd/switchd/fib"
	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/switchd/config"
)

// workloads connects the host component to the rest of the daemon: the
// loop drains the Manager's route feed into fib and the speaker (its
// endpoint feed goes to policy: Daemon.onEndpoints).
type workloads struct {
	m *host.Manager
	// kick is the Manager's route feed (host.Manager.RouteUpdates).
	kick <-chan struct{}

	// Owned by the daemon's loop, like the Table: installed are the
	// workload routes fib took (the status counts them), advertise the
	// prefixes to originate as last drained.
	installed map[fib.RouteKey]struct{}
	advertise []netip.Prefix

	// vms are the configured VMs by name; pendingVMs those whose tap is
	// not there yet (libvirt creates it when the VM starts).
	vms        map[string]host.VMRequest
	pendingVMs map[string]bool
}

func (d *Daemon) startWorkloads(w config.Workloads) error {
	if len(w.Pools) == 0 && len(w.StaticPrefixes) == 0 && len(w.VMs) == 0 {
		return nil
	}
	dir := w.StateDir
	if dir == "" {
		dir = d.opts.StateDir
	}
	if dir == "" {
		return errors.New("workloads: no state directory (config /switchd/config/state-dir or --state-dir)")
	}
	m, err := host.NewManager(host.Options{
		StateDir:       filepath.Join(dir, "endpoints"),
		Pools:          w.Pools,
		StaticPrefixes: w.StaticPrefixes,
		Logger:         d.log.With("component", "host"),
	})
	if err != nil {
		return fmt.Errorf("workloads: %w", err)
	}
	if d.endpoints == nil {
		d.endpoints = m
	}
	d.workloads = &workloads{
		m:          m,
		kick:       m.RouteUpdates(),
		installed:  map[fib.RouteKey]struct{}{},
		vms:        map[string]host.VMRequest{},
		pendingVMs: map[string]bool{},
	}
	return nil
}

// take drains the Manager's route feed into the FIB and reports whether
// the prefixes to advertise changed since the last take.
func (w *workloads) take(t fibSink, log func(msg string, args ...any)) (advChanged bool) {
	c := w.m.DrainRoutes()
	for _, k := range c.Del {
		t.DeleteRoute(k)
		delete(w.installed, k)
	}
	for _, r := range c.Set {
		if err := t.SetRoute(r); err != nil {
			log("workload route rejected by fib", "route", r, "err", err)
			delete(w.installed, r.Key)
			continue
		}
		w.installed[r.Key] = struct{}{}
	}
	if c.OriginateChanged {
		w.advertise = c.Originate
	}
	return c.OriginateChanged
}

// routes is the number of workload routes handed to fib and not removed.
func (w *workloads) routes() int {
	if w == nil {
		return 0
	}
	return len(w.installed)
}

// advertised is the current set of prefixes to originate.
func (w *workloads) advertised() []netip.Prefix { return w.advertise }

// workloadOwner names the workload prefixes among those the speaker
// originates: the speaker keeps them apart from the config's, so a reload
// never withdraws them.
const workloadOwner = "workloads"

// announceWorkloads hands the prefixes to advertise to the speaker: one
// delta call, no config rebuilt, no neighbor compared. A prefix GoBGP
// refused is retried by the next call or reload.
func (d *Daemon) announceWorkloads(ctx context.Context) {
	if err := d.speaker.SetOriginated(ctx, workloadOwner, d.workloads.advertised()); err != nil {
		d.log.Error("announce workload prefixes", "err", err)
	}
}

// setVMs adopts configured VMs that are new and releases those no longer
// configured. A VM whose tap is missing is retried later.
func (w *workloads) setVMs(ctx context.Context, vms []host.VMRequest) error {
	want := map[string]host.VMRequest{}
	for _, vm := range vms {
		want[vm.Name] = vm
	}
	var errs []error
	for name := range w.vms {
		if _, ok := want[name]; !ok {
			if err := w.m.Del(ctx, host.VMEndpointID(name)); err != nil {
				errs = append(errs, fmt.Errorf("release VM %s: %w", name, err))
				continue
			}
			delete(w.vms, name)
			delete(w.pendingVMs, name)
		}
	}
	for name, vm := range want {
		if old, ok := w.vms[name]; ok {
			if vmEqual(old, vm) {
				continue
			}
			// Changed: release the old adoption, then adopt anew.
			if err := w.m.Del(ctx, host.VMEndpointID(name)); err != nil {
				errs = append(errs, fmt.Errorf("re-adopt VM %s: %w", name, err))
				continue
			}
		}
		w.vms[name] = vm
		w.pendingVMs[name] = true
	}
	return errors.Join(append(errs, w.retryVMs(ctx))...)
}

// retryVMs adopts the VMs still pending; it reports errors other than a tap
// that does not exist yet.
func (w *workloads) retryVMs(ctx context.Context) error {
	var errs []error
	for name := range w.pendingVMs {
		vm := w.vms[name]
		if _, err := w.m.AdoptVM(ctx, vm); err != nil {
			if !errors.Is(err, host.ErrInterfaceMissing) {
				errs = append(errs, fmt.Errorf("adopt VM %s (tap %s): %w", name, vm.Tap, err))
			}
			continue
		}
		delete(w.pendingVMs, name)
	}
	return errors.Join(errs...)
}

func vmEqual(a, b host.VMRequest) bool {
	return a.Name == b.Name && a.Tap == b.Tap && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6 &&
		a.MAC.String() == b.MAC.String() && fmt.Sprint(a.Labels) == fmt.Sprint(b.Labels)
}

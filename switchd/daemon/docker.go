package daemon

import (
	"cmp"
	"errors"
	"os"

	"github.com/switchd/switchd/host/docker"
	"github.com/switchd/switchd/policy"
)

// Docker's network and IPAM driver (host/docker) on the daemon's own
// socket: its endpoints are the workload Manager's, its networks'
// policies join the configured workload policy (setPolicy).

// serveDocker serves the driver on path; it needs the workload Manager
// (IPAM pools configured). The returned function stops it.
func (d *Daemon) serveDocker(path string) (func(), error) {
	if d.workloads == nil {
		return nil, errors.New("docker socket: no workload pools configured (/switchd/config/workloads)")
	}
	dir := cmp.Or(d.intent.Workloads.StateDir, d.opts.StateDir)
	drv, err := docker.New(d.workloads.m, dir, d.log.With("component", "docker"))
	if err != nil {
		return nil, err
	}
	srv, err := drv.Serve(path)
	if err != nil {
		return nil, err
	}
	d.dockerDrv = drv
	d.setPolicy(d.intent) // the networks a previous run created
	d.log.Info("docker driver serving", "socket", path, "networks", len(drv.Networks()))
	return func() {
		srv.Close()
		os.Remove(path)
	}, nil
}

// dockerKick is the driver's network feed; nil without a driver.
func (d *Daemon) dockerKick() <-chan struct{} {
	if d.dockerDrv == nil {
		return nil
	}
	return d.dockerDrv.Updates()
}

// withDockerPolicies adds the Docker networks' policies to the
// configured ones, in the order the engine evaluates them.
func (d *Daemon) withDockerPolicies(in policy.Intent) policy.Intent {
	if d.dockerDrv == nil {
		return in
	}
	return withPolicies(in, d.dockerDrv.Policies()) // kubernetes.go
}

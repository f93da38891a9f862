package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/switchd/switchd/host"
	"github.com/switchd/switchd/host/endpointapi"
	"github.com/switchd/switchd/switchd/daemon/apiclient"
)

// The local API's JSON lives in apiclient, which readers (sim, CLI) import
// instead of the daemon; the names here keep the daemon's code unchanged.
type (
	Status         = apiclient.Status
	BGPStatus      = apiclient.BGPStatus
	NeighborStatus = apiclient.NeighborStatus
	FIBStatus      = apiclient.FIBStatus
	PolicyStatus   = apiclient.PolicyStatus
	ACLEntryStatus = apiclient.ACLEntryStatus
	MetricsStatus  = apiclient.MetricsStatus
)

type apiServer struct {
	srv *http.Server
	ln  net.Listener
}

func (a *apiServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a.srv.Shutdown(ctx)
}

// serveAPI serves the local HTTP+JSON API on a unix socket; only local
// processes (the CLI, the sim, the CNI plugin) can reach it.
func (d *Daemon) serveAPI(path string) (*apiServer, error) {
	if err := socketDir(path); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+apiclient.StatusPath, d.handleStatus)
	// Profiles on the local socket only: curl --unix-socket SOCK
	// http://switchd/debug/pprof/profile?seconds=10 > cpu.pprof
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if d.workloads != nil {
		eh := host.NewAPIHandler(d.workloads.m, d.log.With("component", "api"))
		mux.Handle("/v1/endpoints", eh)
		mux.Handle("/v1/endpoints/", eh)
	} else {
		mux.HandleFunc("/v1/endpoints", noWorkloads)
		mux.HandleFunc("/v1/endpoints/", noWorkloads)
	}
	a := &apiServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go a.srv.Serve(ln)
	return a, nil
}

// noWorkloads answers endpoint requests on a daemon without IPAM pools or
// endpoints configured, in the API's error shape, so the CNI plugin can
// tell the user what is missing.
func noWorkloads(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(w).Encode(endpointapi.Error{
		Code:    7, // CNI: invalid network configuration
		Msg:     "switchd has no workload support configured",
		Details: "add IPAM pools under /switchd/ipam/pools to the daemon's config",
	})
}

// handleStatus serves what the loop last published: no component is
// asked but the Kubernetes Watcher's request failures (status.go).
func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(d.Status())
}

// Status is the daemon's status as its loop last saw the feeds, with the
// counts that change without a feed read now (statusBoard.read).
func (d *Daemon) Status() Status { return d.status.read() }

package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchd/switchd/gnmi"
	"github.com/switchd/switchd/switchd/config"
)

// gNMI wiring: the server's cache is the daemon's state publisher; the
// local socket (Options.GNMISocket) is served for the whole run, the TCP
// listener as /system/grpc-servers says, restarted only when that part of
// the config changes; a Set is a reload whose document comes from the
// request (onSet), run by the loop like SIGHUP, so the two never overlap.

// listenerRestartDelay is how long a listener a Set reconfigured keeps
// running after the Set's answer: the answer may travel over it, and
// closing it stops its RPCs at once.
const listenerRestartDelay = time.Second

// gnmiServe is the daemon's gNMI server and its listeners.
type gnmiServe struct {
	srv   *gnmi.Server
	sets  chan setCall
	local *gnmi.Listener // the local socket, for the whole run
	// running is the config the daemon runs, as JSON: what a Set edits.
	// The loop's, as is config.
	running []byte
	// config is the running config's leaves as published, by path
	// (gnmi_config.go).
	config map[string]*gpb.Update

	mu   sync.Mutex // guards the fields below
	tcp  *gnmi.Listener
	cur  config.GNMI // what tcp was started with
	want config.GNMI // what the running config asks for
	// closed: Close ran; a delayed restart does nothing.
	closed bool
}

// setCall is a Set handed to the loop.
type setCall struct {
	req   *gpb.SetRequest
	user  string
	reply chan setReply
}

type setReply struct {
	resp *gpb.SetResponse
	err  error
}

// newGNMI makes the gNMI server if the daemon is to serve gNMI (a local
// socket is given or the config has a listener) and makes it the state
// publisher, unless the caller brought one.
func newGNMI(opts *Options, in *config.Intent, running []byte) (*gnmiServe, error) {
	if opts.GNMISocket == "" && !in.GNMI.Served {
		return nil, nil
	}
	g := &gnmiServe{sets: make(chan setCall), running: running}
	srv, err := gnmi.New(gnmi.Options{
		Set:           g,
		TargetDefined: gnmi.CountersSampled,
		Logger:        opts.Logger.With("component", "gnmi"),
	})
	if err != nil {
		return nil, fmt.Errorf("gnmi: %w", err)
	}
	g.srv = srv
	if opts.State == nil {
		opts.State = srv
	} else {
		opts.Logger.Warn("gnmi: the state tree goes to the publisher given, not the gNMI server")
	}
	return g, nil
}

// Set hands a SetRequest to the daemon's loop and waits for its answer
// (gnmi.SetHandler).
func (g *gnmiServe) Set(ctx context.Context, user string, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	c := setCall{req: req, user: user, reply: make(chan setReply, 1)}
	select {
	case g.sets <- c:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	// Once the loop has it, the Set runs to its end even if the client
	// goes: the outcome is in the log and in the file.
	r := <-c.reply
	return r.resp, r.err
}

// calls is the loop's end of Set (nil without a server).
func (g *gnmiServe) calls() <-chan setCall {
	if g == nil {
		return nil
	}
	return g.sets
}

// serveLocal starts the local socket. A socket another switchd holds is
// logged, not fatal: routing must not stop for want of a CLI.
func (g *gnmiServe) serveLocal(d *Daemon) {
	if g == nil || d.opts.GNMISocket == "" {
		return
	}
	l, err := g.srv.Listen(gnmi.ListenOptions{LocalSocket: d.opts.GNMISocket})
	if err != nil {
		d.log.Error("gnmi local socket not served", "path", d.opts.GNMISocket, "err", err)
		return
	}
	g.local = l
}

// gnmiConfigured follows a new running config (at start, after a
// reload or a Set): its leaves are published, and the TCP listener is
// (re)started, after delay, if the config asks for another than the one
// running (or the last start failed). Errors (a port in use) are logged:
// the config was valid, and the next reload or Set retries.
func (d *Daemon) gnmiConfigured(in *config.Intent, delay time.Duration) {
	g := d.g
	if g == nil {
		if in.GNMI.Served {
			d.log.Warn("gnmi listener configured, but switchd started without gNMI: it is served after a restart")
		}
		return
	}
	if err := g.publishConfig(time.Now()); err != nil {
		d.log.Warn("gnmi: running config not published", "err", err)
	}
	want := in.GNMI
	want.Listen.TLS.StateDir = cmp.Or(in.Workloads.StateDir, d.opts.StateDir)
	g.mu.Lock()
	g.want = want
	current := g.currentLocked()
	g.mu.Unlock()
	if current {
		return
	}
	if delay == 0 {
		g.restart(d)
		return
	}
	time.AfterFunc(delay, func() { g.restart(d) })
}

// currentLocked says whether the listener running is the one wanted:
// made from the same config (config.GNMI.Key; a cleartext password's
// hash differs each time) in the same state dir.
func (g *gnmiServe) currentLocked() bool {
	return g.cur.Key == g.want.Key && g.cur.Listen.TLS.StateDir == g.want.Listen.TLS.StateDir && (g.tcp != nil) == g.want.Served
}

// restart replaces the TCP listener by the one wanted now: a delayed
// restart that a later reload overtook starts what that reload asked for.
func (g *gnmiServe) restart(d *Daemon) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.currentLocked() {
		return
	}
	if g.tcp != nil {
		g.tcp.Close()
		g.tcp = nil
	}
	g.cur = g.want
	if !g.want.Served {
		return
	}
	l, err := g.srv.Listen(g.want.Listen)
	if err != nil {
		d.log.Error("gnmi listener not started", "addresses", g.want.Listen.Addresses, "err", err)
		return
	}
	g.tcp = l
}

// Close stops the listeners.
func (g *gnmiServe) Close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.tcp != nil {
		g.tcp.Close()
	}
	if g.local != nil {
		g.local.Close()
	}
}

// onSet runs one Set as a transaction: the request applied to a copy of
// the running document, validated by the config package as a whole
// (Parse, Translate and every component's checks: what `switchd check`
// and a reload run), the new file prepared beside the old, the intent
// applied as a reload applies it, and only then the file put in place.
// A refused Set changes nothing: not the components, not the file.
func (d *Daemon) onSet(ctx context.Context, c setCall) {
	defer releaseStartupMemory()
	resp, err := d.set(ctx, c.user, c.req)
	c.reply <- setReply{resp, err}
	if err == nil {
		d.gnmiConfigured(d.intent, listenerRestartDelay)
	}
}

func (d *Daemon) set(ctx context.Context, user string, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	in, doc, err := config.Set(d.g.running, req)
	if err != nil {
		d.log.Warn("gnmi set refused; running config unchanged", "user", user, "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	tmp, err := writeTemp(d.opts.ConfigPath, doc)
	if err != nil {
		d.log.Error("gnmi set: config file not written; running config unchanged", "err", err)
		return nil, status.Errorf(codes.Internal, "write %s: %v", d.opts.ConfigPath, err)
	}
	if err := d.applyIntent(ctx, in); err != nil {
		os.Remove(tmp)
		d.log.Error("gnmi set failed", "user", user, "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d.g.running = doc
	if err := os.Rename(tmp, configFile(d.opts.ConfigPath)); err != nil {
		os.Remove(tmp)
		d.log.Error("gnmi set applied but the config file not replaced", "config", d.opts.ConfigPath, "err", err)
		return nil, status.Errorf(codes.Internal, "applied, but %s not replaced: %v", d.opts.ConfigPath, err)
	}
	// The rename reaches the disk with its directory.
	if dir, err := os.Open(filepath.Dir(configFile(d.opts.ConfigPath))); err == nil {
		dir.Sync()
		dir.Close()
	}
	d.log.Info("config changed by gnmi set", "user", user, "config", d.opts.ConfigPath)
	return setResponse(req, time.Now()), nil
}

// setResponse has one UpdateResult per operation, in the order they were
// applied (deletes, replaces, updates).
func setResponse(req *gpb.SetRequest, ts time.Time) *gpb.SetResponse {
	resp := &gpb.SetResponse{Prefix: req.GetPrefix(), Timestamp: ts.UnixNano()}
	for _, p := range req.GetDelete() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: p, Op: gpb.UpdateResult_DELETE})
	}
	for _, u := range req.GetReplace() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.GetPath(), Op: gpb.UpdateResult_REPLACE})
	}
	for _, u := range req.GetUpdate() {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.GetPath(), Op: gpb.UpdateResult_UPDATE})
	}
	return resp
}

// writeTemp writes data to a new file beside path with path's mode, for
// a rename over path: a crash leaves the old file or the new, never half
// of one.
func writeTemp(path string, data []byte) (string, error) {
	mode := os.FileMode(0o600)
	path = configFile(path) // beside the file a link names, which stays a link
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".set-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// configFile is the file the config path names, a link followed.
func configFile(path string) string {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		return target
	}
	return path
}

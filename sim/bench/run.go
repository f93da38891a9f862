// Package bench measures BGP to FIB end to end: a route source
// (sim/bench/source) announces N IPv4 prefixes to a receiver in a fresh pair
// of network namespaces, and the time from session Established until all N
// are in the receiver's kernel FIB (or, for GoBGP alone, in its RIB) is
// taken, with the receiver's peak RSS. Receivers: switchd, GoBGP alone
// (the embedded version and Debian's gobgpd), BIRD 2 and FRR.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchd/switchd/sim/bench/source"
	"github.com/switchd/switchd/sim/ns"
)

// The link between source and receiver, and the announced prefixes.
var (
	SourceAddr   = netip.MustParseAddr("10.99.0.1")
	ReceiverAddr = netip.MustParseAddr("10.99.0.2")
	linkPrefix   = 24
	FirstPrefix  = netip.MustParsePrefix("16.0.0.0/24")
)

const (
	sourceAS   = 65001
	receiverAS = 65002
	apiAddr    = "127.0.0.1:50051"
)

// Result is one measurement.
type Result struct {
	Receiver string
	N        int
	// Elapsed is from session Established (as the source saw it) until
	// all N routes were in the FIB (RIB for RIB-only receivers).
	Elapsed time.Duration
	// Written is from Established until the source had written its last
	// UPDATE into the socket.
	Written time.Duration
	PeakRSS uint64 // bytes, summed over the receiver's processes
	// Lost is set if route notifications were dropped and the end was
	// found by polling dumps (less exact).
	Lost bool
	// Deciles are the times from Established until 10%, 20%, ... of the
	// routes were in the FIB (FIB receivers only).
	Deciles []time.Duration
	// Profile is the receiver's CPU profile, if it ran under one.
	Profile string
}

// RoutesPerSecond is N over Elapsed.
func (r Result) RoutesPerSecond() float64 { return float64(r.N) / r.Elapsed.Seconds() }

var (
	sourcesMu sync.Mutex
	sources   = map[int]*source.Source{}
)

// sourceFor encodes the announcement of n prefixes once per process.
func sourceFor(n int) (*source.Source, error) {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	if s, ok := sources[n]; ok {
		return s, nil
	}
	s, err := source.New(source.Config{
		LocalAS: sourceAS, RouterID: SourceAddr, NextHop: SourceAddr,
		First: FirstPrefix, Count: n,
	})
	if err != nil {
		return nil, err
	}
	sources[n] = s
	return s, nil
}

// Run measures one receiver once with n prefixes, in namespaces named
// ns.RunPrefix()+"-s"+id and "-r"+id that it creates and removes, with
// every process it started killed, whatever the outcome. keepDir keeps the
// receiver's directory (configs, logs, profile) and returns it in the
// error or Result.Profile; otherwise it is removed.
func Run(ctx context.Context, r Receiver, bin Binaries, n int, id string, keepDir bool) (res Result, err error) {
	return run(ctx, r, bin, n, id, keepDir, false)
}

// run is Run; pollFIB makes the FIB counter use dumps from the start
// instead of notifications (to cross-check the two).
func run(ctx context.Context, r Receiver, bin Binaries, n int, id string, keepDir, pollFIB bool) (res Result, err error) {
	res = Result{Receiver: r.Name, N: n}
	src, err := sourceFor(n)
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "swdbench-")
	if err != nil {
		return res, err
	}
	os.Chmod(dir, 0o755)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s, n=%d (files in %s): %w", r.Name, n, dir, err)
			return
		}
		if !keepDir {
			os.RemoveAll(dir)
		}
	}()

	sns, err := ns.New(ns.RunPrefix() + "-s" + id)
	if err != nil {
		return res, err
	}
	defer removeNS(sns)
	rns, err := ns.New(ns.RunPrefix() + "-r" + id)
	if err != nil {
		return res, err
	}
	defer removeNS(rns)
	// Removing the link first flushes the routes through it synchronously,
	// so the kernel's cleanup of a million routes does not spill into the
	// next measurement.
	defer func() {
		if l, err := rns.Handle().LinkByName("brcv"); err == nil {
			rns.Handle().LinkDel(l)
		}
	}()
	if err := ns.Veth(sns, "bsrc", rns, "brcv"); err != nil {
		return res, err
	}
	if err := sns.AddAddr("bsrc", netip.PrefixFrom(SourceAddr, linkPrefix)); err != nil {
		return res, err
	}
	if err := rns.AddAddr("brcv", netip.PrefixFrom(ReceiverAddr, linkPrefix)); err != nil {
		return res, err
	}

	var counter *fibCounter
	if r.Protocol != 0 {
		if counter, err = newFIBCounter(rns, r.Protocol, FirstPrefix, n, pollFIB); err != nil {
			return res, err
		}
		defer counter.Close()
	}

	env := &Env{NS: rns, Dir: dir, Addr: ReceiverAddr, PeerAddr: SourceAddr, AS: receiverAS, PeerAS: sourceAS, Bin: bin}
	proc, err := r.Start(ctx, env)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			proc.Stop()
		}
	}()

	var eor <-chan time.Time
	var rib api.GoBgpServiceClient
	if r.Protocol == 0 && r.PollRIB {
		// Debian's gobgpd speaks GoBGP 3's API: its own command reads it.
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		out := make(chan time.Time, 1)
		go pollRIBCommand(wctx, rns, n, out)
		eor = out
	} else if r.Protocol == 0 {
		conn, err := grpc.NewClient("passthrough:///"+apiAddr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dialIn(ctx, rns, addr)
			}))
		if err != nil {
			return res, fmt.Errorf("gobgp api: %w", err)
		}
		defer conn.Close()
		rib = api.NewGoBgpServiceClient(conn)
		// Connect before the session starts: a first call that races the
		// API's start-up would wait out gRPC's reconnect backoff.
		err = waitFor(ctx, 30*time.Second, func() bool {
			if proc.Exited() != nil {
				return true
			}
			_, err := rib.GetTable(ctx, &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: ipv4Unicast})
			return err == nil
		})
		if err == nil {
			err = proc.Exited()
		}
		if err != nil {
			return res, fmt.Errorf("gobgp api: %w", err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if eor, err = watchEOR(wctx, rib, proc); err != nil {
			return res, err
		}
	}

	sess, err := openSession(ctx, sns, src, proc)
	if err != nil {
		return res, err
	}
	defer sess.Close()
	est := sess.Established()
	writeErr := make(chan error, 1)
	var written time.Time
	go func() {
		err := sess.Announce()
		written = time.Now()
		writeErr <- err
	}()

	// A generous bound: far below any receiver's rate, plus start-up.
	timeout := 60*time.Second + time.Duration(n)*50*time.Microsecond
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var full <-chan struct{}
	if counter != nil {
		full = counter.Full()
	}
	var end time.Time
wait:
	for {
		select {
		case <-full:
			end = counter.FullAt()
			break wait
		case end = <-eor:
			break wait
		case err := <-writeErr:
			if err != nil {
				return res, err
			}
			writeErr = nil
		case <-tick.C:
			if err := proc.Exited(); err != nil {
				return res, err
			}
			if err := sess.Err(); err != nil {
				return res, err
			}
			if counter != nil {
				if err := counter.Err(); err != nil {
					return res, err
				}
			}
		case <-deadline.C:
			got := "?"
			if counter != nil {
				got = fmt.Sprint(counter.Count())
			}
			return res, fmt.Errorf("not all %d routes arrived within %v (%s seen)", n, timeout, got)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Elapsed = end.Sub(est)
	if res.PeakRSS, err = proc.PeakRSS(); err != nil {
		return res, err
	}
	if writeErr != nil {
		if err := <-writeErr; err != nil {
			return res, err
		}
	}
	res.Written = written.Sub(est)

	// Confirm the end the fast path saw with a full count.
	if counter != nil {
		res.Lost = counter.Lost()
		for _, m := range counter.Marks() {
			res.Deciles = append(res.Deciles, m.Sub(est))
		}
		got, err := countFIB(rns, r.Protocol, newPrefixRange(FirstPrefix, n))
		if err != nil {
			return res, err
		}
		if got != n {
			return res, fmt.Errorf("kernel dump shows %d of %d routes with protocol %d", got, n, r.Protocol)
		}
	} else if rib != nil {
		t, err := rib.GetTable(ctx, &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: ipv4Unicast})
		if err != nil {
			return res, fmt.Errorf("gobgp api: get table: %w", err)
		}
		if int(t.NumDestination) != n {
			return res, fmt.Errorf("RIB holds %d of %d prefixes at End-of-RIB", t.NumDestination, n)
		}
	}
	if err := proc.HeapProfile(); err != nil {
		return res, err
	}
	stopped = true
	proc.Stop()
	if proc.ProfileErr != nil {
		return res, proc.ProfileErr
	}
	if proc.ProfileFile != "" {
		res.Profile = proc.ProfileFile
		keepDir = true
	}
	return res, nil
}

var ipv4Unicast = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}

// watchEOR subscribes to End-of-RIB events of the receiver's GoBGP API
// and returns when each arrives. EoR is handled after every UPDATE before
// it, so its event means the whole announcement is in the RIB; and unlike
// polling the table size (GoBGP walks the whole RIB for that, inside its
// main loop), the watch costs the receiver nothing while it works.
func watchEOR(ctx context.Context, c api.GoBgpServiceClient, proc *Proc) (<-chan time.Time, error) {
	var stream api.GoBgpService_WatchEventClient
	err := waitFor(ctx, 30*time.Second, func() bool {
		if proc.Exited() != nil {
			return true
		}
		var err error
		stream, err = c.WatchEvent(ctx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
			Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_TYPE_EOR}},
		}})
		if err != nil {
			return false
		}
		// The first Recv fails at once if the server is not up yet or
		// does not know the filter; an EoR cannot come before the session.
		return true
	})
	if err == nil {
		err = proc.Exited()
	}
	if err != nil {
		return nil, fmt.Errorf("gobgp api: watch End-of-RIB: %w", err)
	}
	out := make(chan time.Time, 1)
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			if t := ev.GetTable(); t != nil && len(t.Paths) > 0 {
				out <- time.Now()
				return
			}
		}
	}()
	return out, nil
}

// pollRIBCommand is for Debian's gobgpd (3.10), whose EoR watch never
// fires and whose API is GoBGP 3's: it polls the table size with Debian's
// gobgp command in the receiver's namespace, backing off so that the polls
// (each walks the whole RIB inside GoBGP's main loop) take at most a
// fifth of its time. The count the command prints is the check at the end.
func pollRIBCommand(ctx context.Context, rns *ns.NS, want int, out chan<- time.Time) {
	for ctx.Err() == nil {
		start := time.Now()
		b, err := rns.Command(ctx, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "summary", "-a", "ipv4").Output()
		took := time.Since(start)
		var dests int
		// "Table ipv4-unicast\nDestination: N, Path: N"
		if i := strings.Index(string(b), "Destination: "); err == nil && i >= 0 {
			fmt.Sscanf(string(b[i:]), "Destination: %d", &dests)
		}
		if dests >= want {
			out <- time.Now()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(max(50*time.Millisecond, 4*took)):
		}
	}
}

// openSession connects to the receiver from the source namespace and runs
// the OPEN exchange, retrying while the receiver is starting up.
func openSession(ctx context.Context, sns *ns.NS, src *source.Source, proc *Proc) (*source.Session, error) {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if err := proc.Exited(); err != nil {
			return nil, err
		}
		conn, err := dialIn(ctx, sns, net.JoinHostPort(ReceiverAddr.String(), "179"))
		if err == nil {
			s, err := src.Open(conn, receiverAS, 10*time.Second)
			if err == nil {
				return s, nil
			}
			last = err
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("no BGP session with %v within 30s: %w", ReceiverAddr, last)
}

// dialIn opens a TCP connection from inside namespace n.
func dialIn(ctx context.Context, n *ns.NS, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		d := net.Dialer{Timeout: time.Second}
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// removeNS kills whatever still runs in n and removes it.
func removeNS(n *ns.NS) {
	for _, pid := range n.Pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := n.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
}
